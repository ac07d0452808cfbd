"""Job-level helpers for the runner: time budgets, shards, replay commands.

Pure functions over strings and results.json, so the CLI stays thin and the
rules (what a shard holds, how a failure is replayed) are unit tested; and
the one way a runner (nightly, teeth) runs an Avocado job against a QEMU.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.host import sut

_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """'2h', '10m', '1h30m', '90s' or plain seconds -> seconds (> 0)."""
    value = text.strip().lower()
    if value.isdigit() and int(value) > 0:
        return int(value)
    match = _DURATION_RE.match(value)
    if not value or not match or not any(match.groups()):
        raise UserError(f"DURATION={text!r} is not a duration; use e.g. 10m, 2h, 1h30m or 90s")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UserError(f"DURATION={text!r} must be longer than 0 s")
    return total


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4); shards count from 1."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UserError(f"SHARD={text!r} is not i/N (e.g. SHARD=1/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UserError(f"SHARD={text!r}: need 1 <= i <= N")
    return index, count


def shard(test_ids: Sequence[str], index: int, count: int) -> list[str]:
    """Tests of shard ``index`` of ``count``: deterministic (sorted, then
    round-robin) and complete (every test in exactly one shard)."""
    ordered = sorted(set(test_ids))
    return ordered[index - 1 :: count]


def parse_avocado_list_json(text: str) -> list[str]:
    """Test references from ``avocado list --json FILE`` (a list of {"Type", "Test"})."""
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise UserError(f"avocado list --json wrote no JSON ({exc}); is the venv complete? (make setup)") from None
    return [e["Test"] for e in entries if isinstance(e, dict) and e.get("Test")]


def avocado_list(avocado: Path, filters: Sequence[str], refs: Sequence[str], cwd: Path) -> list[str]:
    """The tests Avocado would run for these tag filters and references."""
    with tempfile.TemporaryDirectory(prefix="txnstorm-list-") as tmp:
        out = Path(tmp) / "list.json"
        args = [str(avocado), "list", "--json", str(out), *(f"--filter-by-tags={f}" for f in filters), *refs]
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            raise UserError(f"avocado list failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-200:]}")
        return parse_avocado_list_json(out.read_text())


@dataclass(frozen=True)
class Replay:
    test: str
    status: str
    seed: int | None
    command: str


def scenario_refs() -> list[str]:
    """The scenario test files relative to the repo: Avocado names tests by them."""
    return [str(p.relative_to(REPO)) for p in sorted((REPO / "tests").glob("*.py"))]


def run_avocado_job(
    qemu: Path, qemu_img: Path, filters: Sequence[str], results_dir: Path, timeout_s: int | None = None
) -> Path:
    """One Avocado job of the scenario tests (tag ``filters``) against ``qemu``; its results dir
    (``latest``).  QEMU's own names for the binaries (QEMU_TEST_*) are dropped: they must not
    disagree with ``qemu``."""
    avocado = Path(sys.executable).parent / "avocado"
    cmd = [str(avocado), "--config", "avocado.cfg", "run", "--job-results-dir", str(results_dir)]
    cmd += ["--job-timeout", str(timeout_s)] if timeout_s is not None else []
    cmd += [f"--filter-by-tags={f}" for f in filters] + scenario_refs()
    env = {k: v for k, v in os.environ.items() if k not in sut.ALIASES.values()}
    env.update(QEMU=str(qemu), QEMU_IMG=str(qemu_img))
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    return results_dir / "latest"


def _strip_index(test_id: str) -> str:
    """'3-tests/x.py:C.test' -> 'tests/x.py:C.test'."""
    return re.sub(r"^\d+-", "", test_id, count=1)


def replay_command(test: dict, qemu: bool = False) -> str:
    """``make replay-test TEST=... SEED=...`` for one results.json test (with ``qemu``: and ``QEMU=``
    the path the test ran, from its whiteboard)."""
    board = whiteboard(test)
    words = ["make", "replay-test", f"TEST={_strip_index(test.get('id', test.get('name', '?')))}"]
    if board.get("seed") is not None:
        words.append(f"SEED={board['seed']}")
    if qemu and board.get("qemu_path"):
        words.append(f"QEMU={board['qemu_path']}")
    return shlex.join(words)


def replays(results_dir: Path, only_failed: bool = True) -> list[Replay]:
    """A replay command for each (failed) test of a job results dir."""
    results = Path(results_dir) / "results.json"
    try:
        data = json.loads(results.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{results_dir} has no results.json; give an Avocado job results dir (e.g. results/latest)"
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {results}: {exc}") from None
    out = []
    for test in data.get("tests", []):
        status = test.get("status", "?")
        if only_failed and status in ("PASS", "SKIP", "CANCEL", "WARN"):
            continue
        ref = _strip_index(test.get("id", test.get("name", "?")))
        out.append(Replay(ref, status, whiteboard(test).get("seed"), replay_command(test)))
    return out


_TAGS_RE = re.compile(r":avocado:\s*tags=([\w,\-]+)")


RESERVED_TAGS = frozenset({"flaky"})  # what `make ci` filters on, known even while no test carries it


def known_tags(test_files: Sequence[Path]) -> set[str]:
    """Every tag the scenario tests declare (classes and methods), and the reserved ones."""
    tags: set[str] = set(RESERVED_TAGS)
    for path in test_files:
        for match in _TAGS_RE.finditer(path.read_text()):
            tags.update(t for t in match.group(1).split(",") if t)
    return tags


def check_tags(expression: str, test_files: Sequence[Path], var: str = "TAGS") -> list[str]:
    """Avocado tag filters (comma = AND, several filters = OR) naming only
    known tags; ``var`` is the setting a mistake is reported under."""
    known = known_tags(test_files)
    filters = [f for f in expression.split() if f]
    for f in filters:
        for tag in f.split(","):
            name = tag.lstrip("-")
            if name and name not in known:
                raise UserError(f"{var}: unknown tag {name!r}; known tags: {', '.join(sorted(known))}")
    return filters


@dataclass(frozen=True)
class JobSummary:
    statuses: dict[str, int]
    checks: int  # oracle verdicts written by the tests (oracle.log lines)
    tests: dict[str, str]  # test name -> status (WARN: a known issue still reproduces)


def job_summary(job_dir: Path) -> JobSummary:
    """Status counts and oracle checks of one Avocado job results dir."""
    try:
        data = json.loads((Path(job_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return JobSummary({"ERROR": 1}, 0, {})
    statuses: dict[str, int] = {}
    tests: dict[str, str] = {}
    checks = 0
    for test in data.get("tests", []):
        tests[test.get("name", "?")] = test.get("status", "?")
        statuses[test.get("status", "?")] = statuses.get(test.get("status", "?"), 0) + 1
        oracle_log = Path(test.get("logdir", "")) / "oracle.log"
        if oracle_log.is_file():
            checks += sum(1 for line in oracle_log.read_text().splitlines() if line.startswith("round "))
    return JobSummary(statuses, checks, tests)


def side_by_side(table: dict[str, dict[str, dict[str, int]]], versions: Sequence[str]) -> str:
    """A text table: one row per test, one column per QEMU, status counts per cell."""
    width = max([len(t) for t in table] + [20])
    lines = [f"{'test':{width}}  " + "  ".join(f"{'QEMU ' + v:24}" for v in versions)]
    for test in sorted(table):
        cells = []
        for v in versions:
            counts = table[test].get(v, {})
            cells.append(", ".join(f"{s} {n}" for s, n in sorted(counts.items())) or "-")
        lines.append(f"{test:{width}}  " + "  ".join(f"{c:24}" for c in cells))
    return "\n".join(lines)


# -- git bisect run -------------------------------------------------------------
BISECT_GOOD, BISECT_BAD, BISECT_SKIP = 0, 1, 125


@dataclass(frozen=True)
class BisectAnswer:
    exit_status: int  # what `git bisect run` reads: 0 good, 1 bad, 125 skip
    why: str


def whiteboard(test: dict) -> dict:
    """A test's whiteboard (results.json) as a dict; something else is kept under "whiteboard"."""
    try:
        value = json.loads(test.get("whiteboard") or "{}")
    except ValueError:
        return {"whiteboard": test.get("whiteboard")}
    return value if isinstance(value, dict) else {"whiteboard": value}


def _known_issue_answer(test: dict, said: str, issues: Sequence[str]) -> BisectAnswer:
    board = whiteboard(test)
    known = board.get("known_issue")
    failure = board.get("failure")
    if not isinstance(known, dict) and isinstance(failure, dict) and failure.get("known_issue"):
        # A listed issue met by a test not written for it (a stall in the rollback story, say).
        known = {"label": said, "reproduced": True, "issue": failure["known_issue"], "matched": failure["known_issue"]}
    if not isinstance(known, dict):
        return BisectAnswer(BISECT_GOOD, f"{said} (passed with warnings, no known issue)")
    label = known.get("label", said)
    if not known.get("reproduced"):
        return BisectAnswer(BISECT_GOOD, label)
    wanted = set(issues) or {known.get("issue")}
    if known.get("matched") in wanted:
        return BisectAnswer(BISECT_BAD, label)
    bisected = ", ".join(sorted(map(str, wanted)))
    return BisectAnswer(BISECT_SKIP, f"{label}: not the issue bisected ({bisected}); set ISSUE= to bisect it")


def bisect_answer(job_dir: Path, issues: Sequence[str] = ()) -> BisectAnswer:
    """Good, bad or skip for one try of one test (an Avocado job dir).

    * PASS: good.  FAIL (an oracle violation, or the QEMU under test crashed,
      hung or stalled a device): bad.
    * WARN of a known issue: bad only when the issue it reproduced is the one
      being bisected: ``issues`` (``ISSUE=KI-n[,KI-m]``), by default the issue
      the reproducer is written for.  A known issue in the way of another
      one: skip.  "Not seen this run" (the race did not fire): good.
    * ERROR (the suite's own fault), CANCEL, INTERRUPTED, no result: skip.
    """
    try:
        tests = json.loads((Path(job_dir) / "results.json").read_text()).get("tests", [])
    except (OSError, ValueError) as exc:
        return BisectAnswer(BISECT_SKIP, f"no results ({exc})")
    if len(tests) != 1:
        return BisectAnswer(BISECT_SKIP, f"expected one test result, found {len(tests)}")
    test = tests[0]
    status, reason = test.get("status", "?"), (test.get("fail_reason") or "").splitlines()[:1]
    said = f"{status}: {reason[0]}" if reason else status
    answers = {"PASS": BISECT_GOOD, "FAIL": BISECT_BAD}
    if status in answers:
        return BisectAnswer(answers[status], said)
    if status == "WARN":
        return _known_issue_answer(test, said, issues)
    return BisectAnswer(BISECT_SKIP, f"{said} (not a verdict on QEMU)")


# -- nightly budget ---------------------------------------------------------------
MIN_JOB_S = 30  # a job given less than this could not even boot a guest: the budget is spent


@dataclass(frozen=True)
class BudgetedJob:
    iteration: int
    index: int  # which QEMU of the side-by-side list
    timeout_s: int  # Avocado's --job-timeout: never past the budget's end


def budgeted_jobs(budget_s: float, qemus: int, clock: Callable[[], float]) -> Iterator[BudgetedJob]:
    """Iterations over ``qemus`` QEMUs until ``budget_s`` ends: each job's
    timeout is what is left of the budget, and no job starts without
    ``MIN_JOB_S`` left, so the nightly ends within its budget."""
    deadline = clock() + budget_s
    iteration = 0
    while deadline - clock() >= MIN_JOB_S:
        iteration += 1
        for index in range(qemus):
            left = deadline - clock()
            if left < MIN_JOB_S:
                return
            yield BudgetedJob(iteration, index, int(left))
