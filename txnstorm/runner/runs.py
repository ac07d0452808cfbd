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
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from txnstorm import REPO
from txnstorm.errors import Terminated, UserError
from txnstorm.host import sut
from txnstorm.settings import ALIASES, Settings

_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """'2h', '10m', '1h30m', '90s' or plain seconds -> seconds (> 0)."""
    value = text.strip().lower()
    match = _DURATION_RE.match(value)
    if value.isdigit():
        total = int(value)
    elif value and match and any(match.groups()):
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        total = hours * 3600 + minutes * 60 + seconds
    else:
        raise UserError(f"DURATION={text!r} is not a duration; use e.g. 10m, 2h, 1h30m or 90s")
    if total <= 0:
        raise UserError(f"DURATION={text!r} is no time at all; give the nightly a budget, e.g. 10m, 2h or 1h30m")
    return total


def parse_shard(text: str, var: str = "SHARD=") -> tuple[int, int]:
    """'2/4' -> (2, 4); shards count from 1.  ``var`` names the setting in a mistake's line as the
    user wrote it (``SHARD=`` for make, ``--shard=`` for the CLI)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UserError(f"{var}{text!r} is not i/N (e.g. {var}1/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UserError(f"{var}{text!r}: need 1 <= i <= N")
    return index, count


# The tests that catch the faults of teeth/ soonest (docs/teeth.md), in the order that puts every
# first FAIL within about 100 s on a 2-core TCG host with JOBS=2 (what FAILFAST=1 waits for), by the
# stock 10.2.2 tier's own times (make teeth, 2026-12-07, load 6-10).  The race first (~70-110 s):
# class 1 (10.2.2's build crashes in it, 7.2's shows in 23 % of its rounds) and 5bdbaebcce (a
# stall at round 2).  The other slot the short catchers, the one that needs longest first: the
# rollback test (11 s; 2842ff2d81's endless drain: a stall noticed after 30 s and examined, ~77 s),
# StoppedVmIsStill (11 s; class 2 and 9c707525cb abort in it, 7c1f51bf38 often), the NBD server
# stop (10 s; CVE-2024-7409's revert crashes in round 1), the idle iothreads (52 s; c42c3833e0
# judged at its end); then, in whichever slot frees first (the race's, ~72 s), BlockJobEndsUnderStorm
# (34 s; GitLab #3149 crashes at round 1) and the brief NBD snapshot race (34 s; 7c1f51bf38 aborts
# within ~6 s of its rounds); then BackupOfBackupFilter (class 3, a refusal), the quick matrix test
# (10.2.2's class 3 in round 4, class 1 in round 3 in some runs) and NbdAndGuestStorm (classes 2
# and 3 in round 1).
CATCHES_FIRST = (
    "tests/transaction_matrix.py:TransactionMatrix.test_guest_races_the_transaction",
    "tests/transaction_rollback.py:TransactionRollback.test_a_failing_action_rolls_back_every_action",
    "tests/drain_stop_cont.py:StoppedVmIsStill.test_stopped_vm_writes_nothing_and_resumes",
    "tests/nbd_server_stop.py:NbdServerStopsUnderClients.test_server_stop_ends_every_client",
    "tests/iothread_idle.py:IdleIothreadsSleep.test_iothreads_sleep_while_the_guest_trickles",
    "tests/block_job_end.py:BlockJobEndsUnderStorm.test_graph_queries_while_a_stream_job_ends",
    "tests/nbd_known_issues.py:NbdWritesDuringSnapshot.test_snapshot_while_nbd_writes_briefly",
    "tests/transaction_known_issues.py:BackupOfBackupFilter.test_two_backups_of_one_node",
    "tests/transaction_matrix.py:TransactionMatrix.test_two_disks_one_iothread",
    "tests/nbd_transaction.py:NbdAndGuestStorm.test_one_point_in_time_for_nbd_and_guest_writers",
)


def shard(test_ids: Sequence[str], index: int, count: int) -> list[str]:
    """Tests of shard ``index`` of ``count``: deterministic (sorted, then
    round-robin) and complete (every test in exactly one shard); within the
    shard, the tests of CATCHES_FIRST run first."""
    ordered = sorted(set(test_ids))[index - 1 :: count]
    first = [t for t in CATCHES_FIRST if t in ordered]
    return first + [t for t in ordered if t not in first]


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


def pick_tests(selected: Sequence[str], names: Sequence[str], everything: Sequence[str] = ()) -> list[str]:
    """The tests ``names`` name, among ``selected`` (what TAGS selects), in the order given: each name is
    an Avocado id (``tests/x.py:Class.test_y``) or a piece of one (``test_multiqueue``, ``nbd_transaction``,
    ``Rollback``; case does not matter).  A name that matches nothing is one line, which says when it
    does match tests outside TAGS (``everything``), since ``make quick TEST=...`` looks in the quick tier."""
    picked: list[str] = []
    for name in names:
        exact = [ref for ref in selected if ref == name]
        matches = exact or [ref for ref in selected if name.lower() in ref.lower()]
        if not matches:
            outside = [ref for ref in everything if name.lower() in ref.lower()]
            hint = (
                f"; it names {len(outside)} test(s) outside TAGS (e.g. {outside[0]}): use make run TEST=..."
                if outside
                else "; scripts/txnstorm list shows every test"
            )
            raise UserError(f"TEST={name!r} names no test{' of these TAGS' if outside else ''}{hint}")
        picked += [ref for ref in matches if ref not in picked]
    return picked


# -- what a run means, as an exit status (scripts/txnstorm run) ---------------------
EXIT_GREEN, EXIT_FINDING, EXIT_BAD_INPUT, EXIT_SUITE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
EXIT_STATUSES = (
    (EXIT_GREEN, "green: every test PASSed, WARNed with a listed known issue, or was CANCELled (QEMU lacks a feature)"),
    (EXIT_FINDING, "a finding about the QEMU under test: a test FAILed (an oracle violation, or QEMU crashed, "
                   "hung, stalled a device or refused a command)"),
    (EXIT_BAD_INPUT, "bad input: a setting or argument is wrong, or the cache or results dir cannot be written "
                     "or has under 2 GiB free (one line says which); nothing ran"),
    (EXIT_SUITE, "the suite's own trouble: a test ERRORed or was INTERRUPTED, set-up failed, the host failed "
                 "mid-run (one line: a full disk), or the job wrote no result; nothing is known against QEMU"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C): what the run started was ended"),
    (EXIT_TERMINATED, "terminated (SIGTERM: a CI job's timeout, kill): ended as Ctrl-C ends it, Avocado's job told"),
)  # fmt: skip


def job_exit_status(statuses: dict[str, int]) -> int:
    """A job's exit status from its status counts: a FAIL is a finding whatever else happened; then
    ERROR/INTERRUPTED (or no test at all) is the suite's trouble; else green."""
    if statuses.get("FAIL"):
        return EXIT_FINDING
    if not statuses or any(statuses.get(s) for s in ("ERROR", "INTERRUPTED")):
        return EXIT_SUITE
    return EXIT_GREEN


def exit_statuses_table() -> str:
    return "\n".join(f"  {status:<4} {meaning}" for status, meaning in EXIT_STATUSES)


@dataclass(frozen=True)
class Replay:
    test: str
    status: str
    seed: int | None
    command: str


def scenario_refs() -> list[str]:
    """The scenario test files relative to the repo: Avocado names tests by them."""
    return [str(p.relative_to(REPO)) for p in sorted((REPO / "tests").glob("*.py"))]


def env_for(qemu: Path, qemu_img: Path) -> dict[str, str]:
    """This environment with ``qemu`` and ``qemu_img`` as QEMU's and QEMU_IMG's; QEMU's own names
    for the binaries (QEMU_TEST_*, QEMU_PROG, QEMU_IMG_PROG) are dropped: they must not disagree."""
    aliases = {a for names in ALIASES.values() for a in names}
    env = {k: v for k, v in os.environ.items() if k not in aliases}
    env.update(QEMU=str(qemu), QEMU_IMG=str(qemu_img))
    return env


def avocado_binary() -> Path:
    """The venv's ``avocado``, beside the Python that runs the suite."""
    return Path(sys.executable).parent / "avocado"


def run_avocado_job(  # noqa: PLR0913 - the job's five settings, its listener and its order
    qemu: Path, qemu_img: Path, filters: Sequence[str], results_dir: Path, timeout_s: int | None = None,
    *, on_test: Callable[[TestLine], None] | None = None, refs: Sequence[str] | None = None, jobs: int = 1,
    env: Mapping[str, str] | None = None, failfast: bool = False,
) -> Path:  # fmt: skip
    """One Avocado job of the scenario tests (tag ``filters``; or ``refs``, in that order) against
    ``qemu``; its results dir (``latest``).  QEMU's own names for the binaries (QEMU_TEST_*) are
    dropped: they must not disagree with ``qemu``.  ``on_test`` hears each test's verdict line as it ends;
    ``jobs`` tests run side by side; ``env``: more of the environment (settings, a test double's);
    ``failfast``: the job stops at its first test that does not pass."""
    avocado = avocado_binary()
    cmd = [str(avocado), "--config", "avocado.cfg", "run", "--job-results-dir", str(results_dir)]
    cmd += ["--job-timeout", str(timeout_s)] if timeout_s is not None else []
    cmd += ["--failfast"] if failfast else []
    cmd += ["--max-parallel-tasks", str(jobs)] if jobs > 1 else []
    if refs is not None:
        cmd += [exact(ref) for ref in refs]
    else:
        cmd += [f"--filter-by-tags={f}" for f in filters] + scenario_refs()
    env = {**env_for(qemu, qemu_img), **(env or {})}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO, text=True) as job:
        try:
            for line in job.stdout or ():
                ended = parse_test_line(line)
                if ended is not None and on_test is not None:
                    on_test(ended)
        except KeyboardInterrupt as stop:
            let_avocado_end(job, stop)
            raise
    return results_dir / "latest"


def let_avocado_end(job: subprocess.Popen, stop: KeyboardInterrupt) -> None:
    """Ctrl-C or SIGTERM met while an Avocado job runs: Avocado got Ctrl-C's SIGINT too, a SIGTERM
    came to us alone (it is told as Ctrl-C would); it ends its tests and their QEMUs (two minutes at
    most, then it is terminated)."""
    if isinstance(stop, Terminated):
        job.send_signal(signal.SIGINT)
    try:
        job.wait(timeout=120)
    except subprocess.TimeoutExpired:
        job.terminate()
        job.wait()


@dataclass(frozen=True)
class TestLine:
    """One test's end as Avocado's human output says it: `` (03/16) tests/x.py:C.test_y:  PASS (12.34 s)``."""

    index: int
    total: int
    test: str
    status: str
    seconds: float


_TEST_LINE_RE = re.compile(r"^\s*\((\d+)/(\d+)\)\s+(\S+):\s+([A-Z]+)\b")
_SECONDS_RE = re.compile(r"\((\d+(?:\.\d+)?) s\)\s*$")


def parse_test_line(line: str) -> TestLine | None:
    match = _TEST_LINE_RE.match(line)
    if not match or match.group(4) == "STARTED":
        return None
    index, total, test, status = match.groups()
    seconds = _SECONDS_RE.search(line)
    return TestLine(int(index), int(total), test, status, float(seconds.group(1)) if seconds else 0.0)


RUN_ABOUT = "txnstorm-run.json"  # what a run was asked (tags, tests, shard, seed, failfast), beside results.json


def jobs_for(cores: int) -> int:
    """How many scenario tests run side by side by default: one per core.  A test waits for much of
    its time (its guest's boot, QMP round trips, SSH, qemu-img), so even under TCG two tests on two
    cores pay: the quick tier in 0.68-0.77 of the time, with the same verdicts, the teeth table and
    the quick tier beside two CPU hogs included (docs/measurements.md, sixth session).  A KVM guest
    needs less of a core than a TCG one."""
    return max(1, cores)


def parse_jobs(value: str, var: str = "JOBS") -> int | None:
    """``JOBS``: a positive number, or empty/``auto`` (None: ``jobs_for`` decides)."""
    if value.strip().lower() in ("", "auto"):
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise UserError(f"{var}={value} is not a positive number of tests side by side (or auto)")
    return int(value)


def exact(ref: str) -> str:
    """``file.py:Class.test`` as a reference Avocado resolves to that one test: it reads what follows
    the colon as a regular expression it *searches* in ``Class.method``, so ``...with_scsi`` also ran
    ``...with_scsi_vq_mapping`` (twice in a ``make run``).  A file alone stays as it is."""
    path, sep, name = ref.partition(":")
    return f"{path}:^{re.escape(name)}$" if sep and name and not name.startswith("^") else ref


def run_scenarios(  # noqa: PLR0913 - the job's settings
    refs: Sequence[str], results_dir: Path, *, seed: str | None = None, failfast: bool = False,
    about: dict[str, object] | None = None, qemu: Path | None = None, jobs: int = 1,
) -> tuple[Path | None, float]:  # fmt: skip
    """One Avocado job of ``refs`` against the QEMU of the environment (or ``qemu``, with the qemu-img
    beside it), its output on the terminal; (its results dir, seconds), or (None, seconds) when Avocado
    wrote no job (``latest`` did not move).  Ctrl-C lets Avocado end its tests (it kills their QEMUs)
    before it is passed on."""
    avocado = avocado_binary()
    cmd = [str(avocado), "--config", "avocado.cfg", "run", "--job-results-dir", str(results_dir)]
    cmd += ["--failfast"] if failfast else []
    cmd += ["-p", f"seed={seed}"] if seed else []
    cmd += ["--max-parallel-tasks", str(jobs)] if jobs > 1 else []
    latest = results_dir / "latest"
    before = os.readlink(latest) if latest.is_symlink() else None
    started = time.monotonic()
    env = env_for(qemu, qemu.with_name("qemu-img")) if qemu is not None else None
    proc = subprocess.Popen([*cmd, *map(exact, refs)], cwd=REPO, env=env)
    try:
        proc.wait()
    except KeyboardInterrupt as stop:
        let_avocado_end(proc, stop)
        raise
    seconds = time.monotonic() - started
    if not latest.is_symlink() or os.readlink(latest) == before:
        return None, seconds
    job = latest.resolve()
    wanted = {**(about or {}), "seed": seed, "refs": list(refs), "seconds": round(seconds, 1),
              "command": shlex.join([*cmd, *refs])}  # fmt: skip
    (job / RUN_ABOUT).write_text(json.dumps(wanted, indent=1))
    return job, seconds


def run_about(job_dir: Path) -> dict[str, object]:
    """What ``run_scenarios`` recorded of a job ({} for a job it did not run)."""
    try:
        value = json.loads((Path(job_dir) / RUN_ABOUT).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def accels_of(job_dir: Path) -> set[str]:
    """The accelerators a job's tests ran on (from their whiteboards)."""
    try:
        tests = json.loads((Path(job_dir) / "results.json").read_text()).get("tests", [])
    except (OSError, ValueError):
        return set()
    return {str(whiteboard(t)["accel"]) for t in tests if whiteboard(t).get("accel")}


# What a user must know about a run under TCG (doctor, the end of a run, the report's banner): measured
# with make teeth (docs/teeth.md).
TCG_NOTE = (
    "under TCG (no KVM) a guest races a QMP command poorly: its kicks and interrupts wait for the lock the "
    "command holds. The quick tier's race test makes up for much of it (its guest polls its completions): "
    "builds with bug class 1 (a virtio-blk dataplane taking requests inside a drained section) were caught "
    "in every run measured here, 7.2.22 at about 23 % of rounds, 10.2.2 by a crash; still a clean run is a "
    "probability, not a proof: repeat it (make nightly) or run on a KVM host (ACCEL=kvm)"
)


# -- typical time per test (txnstorm list) --------------------------------------------
SHIPPED_TIMES = REPO / "tests" / "typical-seconds.json"  # measured on the reference host (2 cores, TCG)


def typical_seconds(results_root: Path, newest: int = 60) -> dict[str, float]:
    """Median seconds per test over the newest job results below ``results_root``, of the runs that
    PASSed or WARNed (a FAIL may have waited out a stall, an ERROR or CANCEL ended early)."""
    jobs = sorted(Path(results_root).glob("**/results.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    times: dict[str, list[float]] = {}
    for path in jobs[:newest]:
        try:
            tests = json.loads(path.read_text()).get("tests", [])
        except (OSError, ValueError):
            continue
        for test in tests:
            if test.get("status") in ("PASS", "WARN") and test.get("time_elapsed"):
                ref = _strip_index(test.get("id", ""))
                times.setdefault(ref, []).append(float(test["time_elapsed"]))
    return {ref: sorted(t)[len(t) // 2] for ref, t in times.items()}


def shipped_typical_seconds() -> dict[str, float]:
    try:
        value = json.loads(SHIPPED_TIMES.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in value.get("seconds", {}).items()}


def tier_time(refs: Sequence[str], shipped: dict[str, float]) -> str:
    """What a tier takes on the reference host (2 cores, TCG, JOBS=auto: two side by side), from the
    shipped per-test times: what README.md, make help and ``list`` say (test_docs keeps them so)."""
    seconds = sum(shipped.get(ref, 0.0) for ref in refs) / 2
    return f"{len(refs)} tests, ~{max(1, round(seconds / 60))} min on 2 cores under TCG"


def scenario_tags(test_files: Sequence[Path]) -> list[tuple[str, list[str]]]:
    """(Avocado id, sorted tags) of every scenario test, as ``avocado -V list`` reads them (its last
    column; the tags of a class and its methods together)."""
    avocado = avocado_binary()
    refs = [str(p.relative_to(REPO)) for p in test_files]
    proc = subprocess.run([str(avocado), "-V", "list", *refs], cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError(f"avocado list failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-200:]}")
    found = []
    for line in proc.stdout.splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] == "avocado-instrumented":
            tags = words[4].split(",") if len(words) > 4 else []
            found.append((words[1], sorted(tags)))
    return sorted(found)


def _strip_index(test_id: str) -> str:
    """'3-tests/x.py:C.test' -> 'tests/x.py:C.test'."""
    return re.sub(r"^\d+-", "", test_id, count=1)


def replay_command(test: dict) -> str:
    """``make run TEST=... SEED=... QEMU=... ACCEL=...`` for one results.json test: the QEMU it ran
    (and its qemu-img, when that was not the one beside it) and the accelerator it ran on, from its
    whiteboard, so the line pasted replays on the QEMU that failed, not on Debian's."""
    board = whiteboard(test)
    words = ["make", "run", f"TEST={_strip_index(test.get('id', test.get('name', '?')))}"]
    if board.get("seed") is not None:
        words.append(f"SEED={board['seed']}")
    if board.get("qemu_path"):
        words.append(f"QEMU={board['qemu_path']}")
        img = board.get("qemu_img_path")
        if img and Path(img).parent != Path(board["qemu_path"]).parent:
            words.append(f"QEMU_IMG={img}")
    if board.get("accel") in ("kvm", "tcg"):
        words.append(f"ACCEL={board['accel']}")
    return shlex.join(words)


def bisect_command(test: dict) -> str:
    """The ``git bisect run`` line for one test (run in the QEMU tree being bisected)."""
    words = [str(REPO / "scripts" / "bisect-run"), _strip_index(test.get("id", test.get("name", "?")))]
    seed = whiteboard(test).get("seed")
    if seed is not None:
        words.append(str(seed))
    return "git bisect run " + shlex.join(words)


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


def not_run(job_dir: Path) -> int:
    """Tests a job counted but never ran (Avocado's --failfast skips them without a result)."""
    try:
        data = json.loads((Path(job_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return 0
    return max(0, int(data.get("total") or 0) - len(data.get("tests", [])))


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


# -- the nightly's QEMUs -------------------------------------------------------------
def built_qemus(cache: Path) -> list[str]:
    """Every QEMU `make qemu` built into the cache root ``cache``, newest first."""
    built = (cache / "qemu").glob("[!.]*/bin/qemu-system-x86_64")
    return [str(p) for p in sorted(built, key=lambda p: p.stat().st_mtime, reverse=True)]


def one_per_version(values: Sequence[str]) -> list[sut.SystemUnderTest]:
    """The QEMUs these name, the first of each version: results and the grid are kept per version."""
    systems: dict[str, sut.SystemUnderTest] = {}
    for value in values:
        system = sut.resolve(value)
        systems.setdefault(system.version, system)
    return list(systems.values())


def nightly_qemus(words: Sequence[str], settings: Settings) -> list[sut.SystemUnderTest]:
    """NIGHTLY_QEMUS: each word a version that the settings' QEMU (else Debian's) or a `make qemu`
    build has (7.2.22, 10.2.2; the newest build of it), a binary or a build dir."""
    known: dict[str, str] = {}
    for value in [settings.qemu or "", *built_qemus(settings.cache_dir)]:
        known.setdefault(sut.resolve(value).version, value)
    wanted = []
    for word in words:
        if "/" in word or Path(word).exists():
            try:
                wanted.append(str(sut.resolve(word).qemu))
            except UserError as exc:
                what = str(exc).split(": ", 1)[-1].split(";")[0]
                raise UserError(
                    f"NIGHTLY_QEMUS has {word}: {what}; name versions (7.2.22), QEMU binaries or build dirs"
                ) from None
        elif word in known:
            wanted.append(known[word])
        else:
            raise UserError(
                f"NIGHTLY_QEMUS: no QEMU {word} here (have: {', '.join(known)}); name a version, a binary or a "
                "build dir, or build it: make qemu (docs/building-qemu.md)"
            )
    return one_per_version(wanted)


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
