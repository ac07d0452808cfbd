"""Patch-series validation: the series applied onto its base, both built, a tier run N times on
each (interleaved, the same seeds on both sides), and a verdict per test with the odds.

    make validate SERIES=~/mail/v3/ BASE=10.2.2 [TAGS=quick] [RUNS=3] [SEED=N]

``SERIES`` is how maintainers hold a series: a directory of ``git format-patch`` files (``*.patch``,
``*.diff``, applied in name order), an mbox (``b4 am`` writes one; each mail is a patch) or a single
patch; or, with ``BASE`` a QEMU git checkout, two of its revisions ``SERIES=BASE_REV..HEAD_REV``,
built from detached worktrees (removed from the checkout afterwards).  ``BASE`` is a QEMU
``make qemu`` built (its version, e.g. ``10.2.2``: its source tree is the base) or a QEMU source
tree (built here too).  Every bad input is one line and exit 2 before any
build: no such series, no patch in it, a patch that does not apply (named), a base that is not
built, ``RUNS`` not a positive number.

The series tree is a copy of the base's with the patches applied (``patch -p1 --fuzz=0``: as ``git am``,
no fuzzy hunks), kept in ``$TXNSTORM_CACHE/validate/src/`` per base and series; both build through
``scripts/build-qemu`` into ``$TXNSTORM_CACHE/validate/qemu/`` with the compiler cache ``make qemu``
and ``make teeth`` share, so the series build recompiles what the series touched.

Runs alternate base, series, base, series, ... (a loaded host hits both alike), run ``i`` with seed
``s_i`` on both sides.  Per test (``compare``):

* **regression**: the series FAILs in more runs than the base (``series 3/5, base 0/5``), with the
  chance that a split at least this uneven comes by luck when both fail alike (Fisher's exact test,
  one-sided); exit 1.  Also a known issue the series shows and the base never did, with the same
  odds: a known issue excuses only where it is known (``known_issues``).  Only where its entry
  says the QEMU's version is affected *and* the test is one that reproduced it may the base simply
  have missed it: there the odds decide (a split likelier than ``LUCK`` by luck is
  ``new-on-series``, a less likely one a regression);
* **fixed**: a FAIL or a known issue's reproduction on the base that the series never showed, with
  the chance of that miss if the series still had it as often as the base (the same Fisher test:
  every showing on the base's side by luck); "fixed" only when that chance is below 1 %
  (``known_issues.MISS_CHANCE_FOR_FIXED``): base 5/5 and series 0/5 is 0.4 %, base 3/3 and series
  0/3 is 5 %, "not seen on the series, a miss is likely";
* **unchanged**, and tests that ERROR or CANCEL on one side only, said as such.

The table is printed, written as ``validate.json`` and ``validate.html`` in the results dir, with the
replay line of each regression on the series build and the way to bisect the series.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import mailbox
import math
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.host.assets import sha256_file
from txnstorm.host.scratch import private_dir
from txnstorm.oracles import known_issues
from txnstorm.oracles.known_issues import MISS_CHANCE_FOR_FIXED, KnownIssue, KnownIssuesError
from txnstorm.runner import runs, teeth
from txnstorm.settings import ALIASES

PATCH_SUFFIXES = (".patch", ".diff")
REUSED = "reused-base-run.json"  # in a run's dir: the kept base run it reused
LUCK = 0.05  # a regression whose split is likelier than this by luck says so (run more)
EXIT_REGRESSION = 1


# -- the series ---------------------------------------------------------------------
def looks_like_a_patch(text: str) -> bool:
    return bool(re.search(r"^(diff --git |--- \S)", text, re.MULTILINE)) and "\n+++ " in text


def read_series(path: Path, into: Path) -> list[Path]:
    """The series' patches in the order they apply; an mbox is split into ``into`` (one file per
    mail).  UserError (one line) when there is nothing to apply."""
    if not path.exists():
        raise UserError(f"SERIES={path}: no such file or directory; give a directory of git format-patch "
                        "files, an mbox (b4 am) or a patch")  # fmt: skip
    if path.is_dir():
        patches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in PATCH_SUFFIXES)
        if not patches:
            raise UserError(f"SERIES={path}: no patches in it (*.patch or *.diff files, as git format-patch writes)")
        return patches
    text = path.read_text(errors="replace")
    if not text.startswith("From "):
        if not looks_like_a_patch(text):
            raise UserError(f"SERIES={path}: not a patch, an mbox nor a directory of patches")
        return [path]
    into.mkdir(parents=True, exist_ok=True)
    patches = []
    for number, message in enumerate(mailbox.mbox(path), start=1):
        body = message.get_payload(decode=True)
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(message.get_payload())
        if not looks_like_a_patch(text):
            continue  # a cover letter
        slug = re.sub(r"[^A-Za-z0-9]+", "-", str(message.get("Subject", "")))[:50].strip("-") or "patch"
        out = into / f"{number:04d}-{slug}.patch"
        subject = " ".join(str(message.get("Subject", "")).split())
        out.write_text(f"{FROM_MBOX} {path.name}, mail {number} ({subject})\nSubject: {subject}\n\n{text}")
        patches.append(out)
    if not patches:
        raise UserError(f"SERIES={path}: an mbox with no patch in it (only cover letters?)")
    return patches


FROM_MBOX = "X-Txnstorm-From:"  # the first line of a patch split from an mbox: which mail of the user's file


def patch_name(patch: Path) -> str:
    """The user's name for a patch: its file, or for one split from an mbox, which mail of it."""
    with open(patch, errors="replace") as f:
        first = f.readline()
    return first[len(FROM_MBOX) :].strip() if first.startswith(FROM_MBOX) else patch.name


def why_not(said: str) -> str:
    """patch(1)'s account of a patch that does not apply, as one clause: the first hunk that failed
    and its file, a file the base does not have, or a patch the base already has."""
    current, missing = "?", False
    for line in said.splitlines():
        if line.startswith(("patching file ", "checking file ")):
            current = line.split(" ", 2)[2].strip()
        elif line.lower().startswith("can't find file to patch"):
            missing = True  # its name follows, in "The text leading up to this was:"
        elif missing and line.startswith("|+++ "):
            return f"the base has no {line[5:].split(chr(9))[0].strip().split('/', 1)[-1]} to patch"
        elif m := re.match(r"Hunk #(\d+) FAILED at (\d+)", line):
            return f"hunk #{m.group(1)} of {current} does not match the base at line {m.group(2)}"
        elif line.startswith("Reversed (or previously applied) patch detected"):
            return f"the base already has it (or its reverse) in {current}"
    lines = [ln for ln in said.splitlines() if ln.strip() and not ln.startswith(("|", "-----", "The text leading"))]
    return lines[0] if lines else "patch failed"


def series_digest(patches: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(patch.read_bytes())
    return digest.hexdigest()[:12]


def apply_series(base_tree: Path, patches: Sequence[Path], tree: Path, base_label: str) -> Path:
    """``tree``: a copy of ``base_tree`` with ``patches`` applied in order (kept: a second run with
    the same base and series reuses it).  UserError naming the first patch that does not apply."""
    stamp = tree.with_name(tree.name + ".applied")
    if stamp.is_file() and tree.is_dir():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    # Hard links: instant and no space; patch(1) writes each file it changes anew (the base keeps its copy).
    subprocess.run(["cp", "-al", str(base_tree), str(tree)], check=True)
    for patch in patches:
        done = subprocess.run(  # rejects discarded (-r -): the tree is removed, a .rej could not be read
            ["patch", "-p1", "--batch", "--forward", "--fuzz=0", "-r", "-", "-d", str(tree),
             "-i", str(patch.resolve())],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(tree, ignore_errors=True)
            raise UserError(f"{patch_name(patch)} does not apply to {base_label}: {why_not(done.stdout + done.stderr)}")
    stamp.write_text("\n".join(p.name for p in patches) + "\n")
    return tree


# -- the base -------------------------------------------------------------------------
@dataclass(frozen=True)
class Base:
    label: str  # "QEMU 10.2.2 (make qemu)" or the tree's path
    tree: Path
    qemu: Path | None  # its build, when there is one already


def resolve_base(value: str, cache: Path) -> Base:
    """``BASE``: a version ``make qemu`` built (its tree and binary, in the cache root ``cache``) or a
    QEMU source tree."""
    if not value:
        raise UserError("name the base: BASE=10.2.2 (a version make qemu built) or BASE=~/qemu (a source tree)")
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "configure").is_file() or not (path / "VERSION").is_file():
            raise UserError(f"BASE={value} is not a QEMU source tree (no configure + VERSION)")
        return Base(str(path.resolve()), path.resolve(), None)
    if not re.fullmatch(r"\d+\.\d+\.\d+", value):
        raise UserError(f"BASE={value}: neither a QEMU source tree nor a version such as 10.2.2")
    qemu = teeth.stock_build(value, cache)
    built = sorted(teeth.source_trees(cache))
    if qemu is None:
        raise UserError(f"BASE={value} is not built (built: {', '.join(built) or 'none'}); "
                        f"build it first: make qemu QEMU_DEB_SUITE=sid (or QEMU_SRC=<tree>)")  # fmt: skip
    source = Path(json.loads((qemu.parent.parent / "manifest.json").read_text()).get("source", ""))
    if not (source / "configure").is_file():
        raise UserError(f"BASE={value}: its source tree {source} is gone; rebuild it with make qemu")
    return Base(f"QEMU {value} (make qemu)", source, qemu)


def check_runs(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"RUNS={value} is not a positive number of runs per side (e.g. RUNS=3)")
    return int(value)


# -- the builds -----------------------------------------------------------------------
def build(tree: Path, log: Path, cache: Path) -> tuple[Path, float, str]:
    """``scripts/build-qemu`` on ``tree`` into the validate cache (below the cache root ``cache``):
    (binary, seconds, compiler cache line)."""
    env = {**_env_without_qemu(), "TXNSTORM_CACHE": str(cache / "validate"), "QEMU_SRC": str(tree),
           **teeth.shared_ccache(cache)}  # fmt: skip
    started = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        done = subprocess.run([str(REPO / "scripts" / "build-qemu")], env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)  # fmt: skip
    seconds = time.monotonic() - started
    said = log.read_text(errors="replace")
    found = re.findall(r"^QEMU=(\S+)$", said, re.MULTILINE)
    if done.returncode != 0 or not found:
        raise UserError(f"the build of {tree} failed (exit {done.returncode}); log: {log}")
    cache = re.findall(r"compiler cache: (\d+ hits, \d+ misses)", said)
    return Path(found[-1]), seconds, cache[-1] if cache else ("up to date" if "up to date" in said else "")


def _env_without_qemu() -> dict[str, str]:
    drop = ("QEMU", "QEMU_IMG", "QEMU_SRC", *(a for names in ALIASES.values() for a in names))
    return {k: v for k, v in os.environ.items() if k not in drop}


# -- the verdicts ---------------------------------------------------------------------
@dataclass
class Tally:
    """One test's outcomes on one side: how many runs, and of them how many FAILed (with their
    reasons), reproduced a known issue (WARN "still reproduces", counted per issue: a series can
    end one known issue and show another), ERRORed or were CANCELled."""

    runs: int = 0
    fails: int = 0
    reproduced: int = 0
    errors: int = 0
    cancels: int = 0
    reasons: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # the seeds of the failing runs
    issue_seeds: list[int] = field(default_factory=list)  # the seeds of the runs that reproduced a known issue
    issues: dict[str, int] = field(default_factory=dict)  # known issue -> runs that reproduced it
    qemu: str = ""  # the version the runs' QEMU said (their whiteboard's), where known

    def add(self, status: str, reason: str, known_issue: str | None, seed: int, qemu: str = "") -> None:  # noqa: PLR0913
        self.runs += 1
        self.qemu = self.qemu or qemu
        if status == "FAIL":
            self.fails += 1
            self.reasons.append(reason)
            self.seeds.append(seed)
        elif status == "WARN" and known_issue:
            self.reproduced += 1
            self.issues[known_issue] = self.issues.get(known_issue, 0) + 1
            self.issue_seeds.append(seed)
        elif status in ("ERROR", "INTERRUPTED"):
            self.errors += 1
        elif status in ("CANCEL", "SKIP"):
            self.cancels += 1

    @property
    def shown(self) -> dict[str, int]:
        """What the runs showed, by name: ``FAIL`` and each known issue reproduced."""
        return {**({"FAIL": self.fails} if self.fails else {}), **self.issues}

    @property
    def replay_seed(self) -> int | str:
        """A seed to replay what these runs showed: a FAIL's, else a known issue's."""
        return (self.seeds or self.issue_seeds or [""])[0]

    @property
    def judged(self) -> int:
        """Runs that judged something (neither ERROR nor CANCEL)."""
        return self.runs - self.errors - self.cancels


def fisher_one_sided(k_series: int, n_series: int, k_base: int, n_base: int) -> float:
    """The chance that, of the ``k_series + k_base`` failing runs, at least ``k_series`` fall on the
    series' ``n_series`` runs when both sides fail alike (hypergeometric tail)."""
    total, failing = n_series + n_base, k_series + k_base
    denominator = math.comb(total, failing)
    return sum(
        math.comb(n_series, x) * math.comb(n_base, failing - x) for x in range(k_series, min(n_series, failing) + 1)
    ) / denominator


@dataclass(frozen=True)
class Verdict:
    test: str
    kind: str  # regression, fixed, not-fixed, new-on-series, unchanged, error-on-one-side, cancel-on-one-side
    line: str
    odds: float | None = None


def what_the_series_ended_or_began(test: str, base: Tally, series: Tally, counts: str) -> Verdict | None:
    """``fixed`` (or ``not-fixed``, when a miss is likely) for what the base showed (a FAIL, a known
    issue) and the series never did; ``new-on-series`` for a known issue only the series showed
    (a fix can end one and unmask another: both are said).  None: neither."""
    gone = [name for name in base.shown if not series.shown.get(name)]
    only_on_series = [f"{name} {n}/{series.runs}" for name, n in series.shown.items() if name not in base.shown]
    also = f"; on the series only: {', '.join(only_on_series)} (the base never showed it)" if only_on_series else ""
    if gone and series.judged:
        misses = {name: fisher_one_sided(base.shown[name], base.runs, 0, series.judged) for name in gone}
        seen = "; ".join(f"{name} not seen in {series.judged} series runs, base {base.shown[name]}/{base.runs}, "
                         f"chance of a miss {miss:.2%}" for name, miss in misses.items())  # fmt: skip
        worst = max(misses.values())  # every one of them gone, or not "fixed"
        if worst < MISS_CHANCE_FOR_FIXED:
            return Verdict(test, "fixed", seen + also, worst)
        return Verdict(test, "not-fixed", f"{seen}: a miss is likely, not judged fixed (run more: RUNS=){also}", worst)
    if only_on_series:
        return Verdict(test, "new-on-series", f"{counts}{also}")
    return None


def known_issue_regression(
    test: str, base: Tally, series: Tally, issues: Sequence[KnownIssue] | None
) -> Verdict | None:
    """A regression for each known issue the series showed and the base never did, unless its entry
    knows it on this QEMU in this test and the split could be luck (then ``new-on-series`` says
    it): with the odds, the strongest first.  None: no such issue."""
    only_on_series = {name: n for name, n in series.issues.items() if not base.shown.get(name)}
    if not only_on_series or not base.runs:
        return None
    listed = known_issues.load() if issues is None else issues
    version = base.qemu or series.qemu
    found = []
    for name, count in only_on_series.items():
        luck = fisher_one_sided(count, series.runs, 0, base.runs)
        try:
            issue = known_issues.get(name, listed)
        except KnownIssuesError:
            found.append((luck, f"{name}: no longer listed"))
            continue
        where = known_issues.standing(issue, version, test) if version else None
        if where is None:
            found.append((luck, f"{name}: the runs did not say their QEMU's version, so no entry knows it there"))
        elif where.scope == "known":
            if luck > LUCK:
                continue  # known on this QEMU in this test: the base may simply have missed it
            found.append((luck, f"{name} is known on QEMU {version} in this test, but not this often"))
        elif where.scope == "regression":
            found.append((luck, where.label))
        else:
            found.append((luck, f"{name} outside where it is known: {where.why}"))
    if not found:
        return None
    luck = min(odds for odds, _ in found)
    caveat = "" if luck <= LUCK else "; could be luck: run more (RUNS=)"
    shown = ", ".join(f"{name} {n}/{series.runs}" for name, n in only_on_series.items())
    why = "; ".join(said for _, said in sorted(found))
    return Verdict(test, "regression", f"series {shown}, base never ({base.runs} runs): {why}; chance of a split "
                                       f"this uneven by luck {luck:.1%}{caveat}", luck)  # fmt: skip


def more_fails(test: str, base: Tally, series: Tally, counts: str) -> Verdict | None:
    """A regression when the series FAILs in more runs than the base, with the odds; else None."""
    if not (series.runs and base.runs and series.fails * base.runs > base.fails * series.runs):
        return None
    luck = fisher_one_sided(series.fails, series.runs, base.fails, base.runs)
    caveat = "" if luck <= LUCK else "; could be luck: run more (RUNS=)"
    why = f" ({series.reasons[0][:160]})" if series.reasons else ""
    return Verdict(test, "regression", f"{counts}; chance of a split this uneven by luck {luck:.1%}{caveat}{why}",
                   luck)  # fmt: skip


def compare(test: str, base: Tally, series: Tally, issues: Sequence[KnownIssue] | None = None) -> Verdict:
    """One test's verdict, base vs series (the rules are in the module's docstring)."""
    counts = f"series {series.fails}/{series.runs} FAIL, base {base.fails}/{base.runs}"
    regression = more_fails(test, base, series, counts) or known_issue_regression(test, base, series, issues)
    if regression is not None:
        return regression
    shown = what_the_series_ended_or_began(test, base, series, counts)
    if shown is not None:
        return shown
    for side, mine, other in (("series", series, base), ("base", base, series)):
        if mine.errors and not other.errors:
            return Verdict(test, "error-on-one-side", f"ERROR on the {side} only ({mine.errors}/{mine.runs}): "
                                                      "the suite's trouble there, nothing judged")  # fmt: skip
        if mine.cancels and not other.cancels:
            return Verdict(test, "cancel-on-one-side", f"CANCEL on the {side} only ({mine.cancels}/{mine.runs}): "
                                                       "that QEMU lacks a feature the test needs")  # fmt: skip
    if not base.shown and not series.shown:
        return Verdict(test, "unchanged", f"nothing shown on either side ({series.runs} series runs, {base.runs} base)")
    return Verdict(test, "unchanged", f"alike: series {side_counts(series)}; base {side_counts(base)}")


# -- running ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Side:
    name: str  # "base" or "series"
    qemu: Path


def tally_job(job: Path, seed: int, tallies: dict[str, Tally]) -> None:
    """Add one job's outcomes (its results.json) to ``tallies`` by test name."""
    try:
        results = json.loads((job / "results.json").read_text())
    except (OSError, ValueError):
        return
    tally_results(results, seed, tallies)


def tally_results(results: dict[str, object], seed: int, tallies: dict[str, Tally]) -> None:
    tests = results.get("tests", [])
    for test in tests if isinstance(tests, list) else []:
        board = runs.whiteboard(test)
        known = board.get("known_issue") if isinstance(board.get("known_issue"), dict) else {}
        failure = board.get("failure") if isinstance(board.get("failure"), dict) else {}
        reproduced = None  # the known issue a WARN reproduced (the one matched, when it was another)
        if test.get("status") == "WARN" and failure.get("known_issue") is not None:
            reproduced = str(failure["known_issue"])
        elif test.get("status") == "WARN" and known.get("reproduced"):
            reproduced = str(known.get("matched") or known.get("issue") or "known issue")
        name = str(test.get("name", test.get("id", "?")))
        reason = (test.get("fail_reason") or "").splitlines()[0] if test.get("fail_reason") else ""
        qemu = str(board.get("qemu") or "")
        tallies.setdefault(name, Tally()).add(str(test.get("status")), reason, reproduced, seed, qemu)


def interleaved(count: int, seed: int | None) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(1 << 32) for _ in range(count)]


@dataclass
class Outcome:
    base: Base
    series_patches: list[str]
    qemus: dict[str, str]
    builds: dict[str, dict[str, object]]
    seeds: list[int]
    verdicts: list[Verdict]
    tallies: dict[str, dict[str, dict[str, object]]]
    reused: int = 0  # base runs reused from an earlier validation (not interleaved with this series)

    @property
    def how_run(self) -> str:
        if not self.reused:
            return f"{len(self.seeds)} runs each, interleaved"
        return f"{len(self.seeds)} runs each ({self.reused} of the base's reused from an earlier validation)"

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.kind == "regression"]


class KeptBaseRuns:
    """The base's runs of earlier validations, kept per (base binary, tests, seed, suite tree): a
    second series against the same base with the same ``SEED`` (v2 of a series, or several series)
    runs only its own side.  Only runs that ERRORed nowhere are kept (the suite's trouble is run again)."""

    def __init__(self, directory: Path, qemu: Path, refs: Sequence[str]) -> None:
        self.directory = directory
        self.identity = {"qemu": str(qemu), "qemu_sha256": sha256_file(qemu), "tests": sorted(refs),
                         "suite": suite_revision(), "env": runs_environment()}  # fmt: skip

    def _path(self, seed: int) -> Path:
        key = json.dumps({**self.identity, "seed": seed}, sort_keys=True)
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"

    def get(self, seed: int) -> dict[str, object] | None:
        with contextlib.suppress(OSError, ValueError):
            kept = json.loads(self._path(seed).read_text())
            if isinstance(kept, dict) and isinstance(kept.get("results"), dict):
                return kept
        return None

    def keep(self, seed: int, job: Path) -> None:
        with contextlib.suppress(OSError, ValueError):
            results = json.loads((job / "results.json").read_text())
            if any(t.get("status") in ("ERROR", "INTERRUPTED") for t in results.get("tests", [])):
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path(seed).write_text(json.dumps({"job": str(job), "results": results}))


def suite_revision() -> str:
    """This suite's commit and the digest of its uncommitted changes (a changed test is another suite);
    outside a git checkout a value of this moment (then a kept run is never the same suite: nothing is reused)."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if head.returncode != 0:
        return f"unknown-{time.time()}"
    diff = subprocess.run(["git", "-C", str(REPO), "diff", "HEAD", "--", "txnstorm", "tests", "guests",
                           "avocado.cfg", "known-issues.json"], capture_output=True, check=False).stdout  # fmt: skip
    return f"{head.stdout.strip()}+{hashlib.sha256(diff).hexdigest()[:12]}"


def runs_environment() -> dict[str, str]:
    """The settings that change how a run runs (the accelerator, the guest's boot, the hang window)."""
    return {k: v for k, v in sorted(os.environ.items()) if k == "ACCEL" or k.startswith("TXNSTORM_")}


def run_sides(  # noqa: PLR0913 - the runs' inputs
    sides: Sequence[Side], refs: Sequence[str], seeds: Sequence[int], results: Path,
    run_job: Callable[..., tuple[Path | None, float]] = runs.run_scenarios, *,
    kept: KeptBaseRuns | None = None, say: Callable[[str], None] = print,
) -> dict[str, dict[str, Tally]]:  # fmt: skip
    """Each seed on every side in turn (base, series, base, series, ...): {side: {test: Tally}}.
    A base run ``kept`` from an earlier validation (same binary, tests, seed and suite) is reused."""
    tallies: dict[str, dict[str, Tally]] = {side.name: {} for side in sides}
    for i, seed in enumerate(seeds, start=1):
        for side in sides:
            earlier = kept.get(seed) if kept is not None and side.name == "base" else None
            if earlier is not None:
                say(f"validate: base run {i} (seed {seed}): the same build, tests and suite ran it before "
                    f"({earlier.get('job')}): reused (another SEED runs the base again)")  # fmt: skip
                tally_results(earlier["results"], seed, tallies[side.name])  # type: ignore[arg-type]
                (results / f"{side.name}-{i}").mkdir(parents=True, exist_ok=True)
                (results / f"{side.name}-{i}" / REUSED).write_text(json.dumps(earlier))  # for judge_again
                continue
            job, _ = run_job(refs, results / f"{side.name}-{i}", seed=str(seed), qemu=side.qemu)
            if job is not None:
                tally_job(job, seed, tallies[side.name])
                if kept is not None and side.name == "base":
                    kept.keep(seed, job)
    return tallies


def judge_all(tallies: dict[str, dict[str, Tally]], issues: Sequence[KnownIssue] | None = None) -> list[Verdict]:
    names = sorted(set(tallies["base"]) | set(tallies["series"]))
    order = {"regression": 0, "fixed": 1, "not-fixed": 2, "new-on-series": 3, "error-on-one-side": 4,
             "cancel-on-one-side": 5}  # fmt: skip
    listed = known_issues.load() if issues is None else issues
    verdicts = [compare(n, tallies["base"].get(n, Tally()), tallies["series"].get(n, Tally()), listed) for n in names]
    # regressions strongest first (the least likely by luck), then the rest by kind and name
    return sorted(verdicts, key=lambda v: (order.get(v.kind, 9), v.odds if v.kind == "regression" else 0, v.test))


def replay_line(verdict: Verdict, series: Tally, qemu: Path) -> str:
    seed = series.replay_seed
    return f"make run TEST={verdict.test} SEED={seed} QEMU={qemu}"


def patch_count(count: int) -> str:
    return f"{count} patch" if count == 1 else f"{count} patches"


def _patches(outcome: Outcome) -> str:
    return patch_count(len(outcome.series_patches))


def side_counts(tally: Tally) -> str:
    """One side's column: FAILs, known-issue reproductions, ERRORs and CANCELs of its runs."""
    said = [f"FAIL {tally.fails}/{tally.runs}"]
    said += [f"{issue} {count}/{tally.runs}" for issue, count in sorted(tally.issues.items())]
    said += [f"ERROR {tally.errors}"] if tally.errors else []
    said += [f"CANCEL {tally.cancels}"] if tally.cancels else []
    return ", ".join(said)


def render_text(outcome: Outcome, tallies: dict[str, dict[str, Tally]]) -> str:
    lines = [f"validate: base {outcome.base.label} vs the series ({_patches(outcome)}), "
             f"{outcome.how_run}, seeds {' '.join(map(str, outcome.seeds))}"]  # fmt: skip
    for name, build in outcome.builds.items():
        lines.append(f"  {name} build: {build.get('seconds', '-')} s ({build.get('cache') or 'already built'})")
    for verdict in outcome.verdicts:
        lines.append(f"{verdict.kind:>18}  {verdict.test}: {verdict.line}")
        if verdict.kind == "regression":
            series = tallies["series"].get(verdict.test, Tally())
            replay = replay_line(verdict, series, Path(outcome.qemus["series"]))
            lines.append(f"{'':>18}  replay on the series: {replay}")
            lines.append(f"{'':>18}  which patch: apply the series to a QEMU checkout of the base (git am), then "
                         f"git bisect start HEAD <base>; git bisect run {REPO}/scripts/bisect-run "
                         f"{verdict.test} {series.replay_seed}")  # fmt: skip
    regressions = len(outcome.regressions)
    lines.append(f"validate: {regressions} regression(s), "
                 f"{sum(v.kind == 'fixed' for v in outcome.verdicts)} fixed, "
                 f"{sum(v.kind == 'unchanged' for v in outcome.verdicts)} unchanged")  # fmt: skip
    return "\n".join(lines) + "\n"


KIND_STYLE = {"regression": "#c62828", "fixed": "#2e7d32", "not-fixed": "#ef6c00", "new-on-series": "#ad1457",
              "error-on-one-side": "#6a1b9a", "cancel-on-one-side": "#546e7a", "unchanged": "#333"}  # fmt: skip


def render_html(outcome: Outcome, tallies: dict[str, dict[str, Tally]]) -> str:
    esc = html.escape
    rows = []
    for verdict in outcome.verdicts:
        base, series = tallies["base"].get(verdict.test, Tally()), tallies["series"].get(verdict.test, Tally())
        extra = ""
        if verdict.kind == "regression":
            extra = f"<br><code>{esc(replay_line(verdict, series, Path(outcome.qemus['series'])))}</code>"
        short = verdict.test.split(":", 1)[-1]
        rows.append(
            f"<tr><td style='color:{KIND_STYLE.get(verdict.kind, '#333')};font-weight:bold'>{esc(verdict.kind)}</td>"
            f"<td title='{esc(verdict.test)}'><code>{esc(short)}</code></td><td>{esc(side_counts(base))}</td>"
            f"<td>{esc(side_counts(series))}</td><td>{esc(verdict.line)}{extra}</td></tr>"
        )
    head = (f"base {esc(outcome.base.label)} vs the series ({_patches(outcome)}: "
            f"{esc(', '.join(outcome.series_patches))}); {esc(outcome.how_run)}; seeds "
            f"{esc(' '.join(map(str, outcome.seeds)))}")  # fmt: skip
    regressions = len(outcome.regressions)
    banner = (f"<p style='background:#ffebee;padding:8px'><b>{regressions} regression(s)</b></p>" if regressions
              else "<p style='background:#e8f5e9;padding:8px'><b>no regression</b></p>")  # fmt: skip
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>txnstorm validate</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}"
        "table{width:100%}code{word-break:break-all}td:nth-child(2){max-width:28em}td:nth-child(3),td:nth-child(4){white-space:nowrap}</style></head><body>"
        f"<h1>Patch series validation</h1><p>{head}</p>{banner}"
        "<table><tr><th>verdict</th><th>test</th><th>base</th><th>series</th><th>why</th></tr>"
        + "".join(rows)
        + "</table></body></html>\n"
    )


@dataclass(frozen=True)
class Range:
    """A series as two revisions of a QEMU git checkout (``SERIES=BASE..HEAD``, ``BASE=<checkout>``)."""

    repo: Path
    base: str  # full commit ids
    head: str
    log: list[str]  # "<short id> <subject>" of each commit in base..head

    @property
    def label(self) -> str:
        return f"{self.repo} at {self.base[:12]}"


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def parse_range(series: str, base_value: str) -> Range | None:
    """``SERIES=A..B`` with ``BASE`` a QEMU git checkout (and no file called ``A..B``): the commits
    of ``A..B`` are the series, built from worktrees of A and B.  None: not a range."""
    if ".." not in series or Path(series).expanduser().exists():
        return None
    repo = Path(base_value).expanduser()
    if not base_value or git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise UserError(f"SERIES={series} is a range of revisions: BASE must be the QEMU git checkout they are in")
    first, _, last = series.partition("..")
    ids = []
    for rev in (first, last or "HEAD"):
        found = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if found.returncode != 0:
            raise UserError(f"SERIES={series}: {rev} is not a revision of {repo}")
        ids.append(found.stdout.strip())
    log = git(repo, "log", "--reverse", "--format=%h %s", f"{ids[0]}..{ids[1]}").stdout.splitlines()
    if not log:
        raise UserError(f"SERIES={series}: no commit in it ({rev} is not ahead of {first})")
    return Range(repo.resolve(), ids[0], ids[1], log)


@contextlib.contextmanager
def worktrees(span: Range, cache: Path) -> Iterator[tuple[Path, Path]]:
    """Detached worktrees of the range's two ends (at fixed paths per commit: a build of the same
    commit is reused), removed from the checkout afterwards."""
    made = []
    try:
        for commit in (span.base, span.head):
            tree = cache / "validate" / "trees" / commit[:12]
            if tree.exists():
                git(span.repo, "worktree", "remove", "--force", str(tree))
                shutil.rmtree(tree, ignore_errors=True)
            git(span.repo, "worktree", "prune")
            added = git(span.repo, "worktree", "add", "--detach", str(tree), commit)
            if added.returncode != 0:
                raise UserError(f"git worktree add of {commit[:12]} failed: {added.stderr.strip()[:200]}")
            made.append(tree)
        yield made[0], made[1]
    finally:
        for tree in made:
            git(span.repo, "worktree", "remove", "--force", str(tree))


def check_inputs(series_value: str, base_value: str, runs_value: str, cache: Path) -> None:
    """The cheap checks of every input (no copy, no build, no test list): RUNS, the range or the
    series' patches and the base (``cache``: the cache root of its build); UserError (one line)
    for the first that is wrong."""
    check_runs(runs_value)
    if not series_value.strip():
        raise UserError("name the series: SERIES=DIR (git format-patch files), SERIES=FILE.mbox (b4 am) or a patch")
    if parse_range(series_value, base_value) is None:
        with private_dir("series") as split:  # the user's own file first: its verdict needs no build
            read_series(Path(series_value).expanduser(), split)
        resolve_base(base_value, cache)


def validate(  # noqa: PLR0913 - the command's inputs
    series_value: str, base_value: str, refs: Sequence[str], runs_value: str, results: Path, *,
    seed: int | None = None, say: Callable[[str], None] = print,
    preflight: Callable[[Path], object] = lambda qemu: None,
    run_job: Callable[..., tuple[Path | None, float]] = runs.run_scenarios, cache: Path,
) -> Outcome:  # fmt: skip
    """The whole command: every input checked (and the series applied) before any build;
    ``preflight`` (the series build, the guest and the accelerator) after the builds, before the runs;
    ``cache``: the cache root (the base's build, the series' trees and builds, kept base runs)."""
    count = check_runs(runs_value)
    builds: dict[str, dict[str, object]] = {}
    span = parse_range(series_value, base_value)
    if span is not None:
        base = Base(span.label, span.repo, None)
        names = span.log
        say(f"validate: {len(names)} commits of {span.repo}, {span.base[:12]}..{span.head[:12]}")
        results.mkdir(parents=True, exist_ok=True)
        with worktrees(span, cache) as (base_tree, head_tree):
            base_qemu, seconds, ccache = build(base_tree, results / "build-base.log", cache)
            builds["base"] = {"seconds": round(seconds), "cache": ccache}
            series_qemu, seconds, ccache = build(head_tree, results / "build-series.log", cache)
            builds["series"] = {"seconds": round(seconds), "cache": ccache}
    else:
        base = resolve_base(base_value, cache)
        with private_dir("series") as split:  # bad input leaves nothing behind, not even the results dir
            patches = read_series(Path(series_value).expanduser(), split)
            key = f"{re.sub(r'[^A-Za-z0-9.+-]', '_', base.tree.name)}-{series_digest(patches)}"
            tree = apply_series(base.tree, patches, cache / "validate" / "src" / key, base.label)
            (results / "series").mkdir(parents=True, exist_ok=True)
            names = [Path(shutil.copy(patch, results / "series" / patch.name)).name for patch in patches]
        say(f"validate: the series ({patch_count(len(names))}) applies to {base.label}: {tree}")
        base_qemu = base.qemu
        if base_qemu is None:
            base_qemu, seconds, ccache = build(base.tree, results / "build-base.log", cache)
            builds["base"] = {"seconds": round(seconds), "cache": ccache}
        series_qemu, seconds, ccache = build(tree, results / "build-series.log", cache)
        builds["series"] = {"seconds": round(seconds), "cache": ccache}
    say(f"validate: series build {builds['series']['seconds']} s ({builds['series']['cache']}): {series_qemu}")
    preflight(series_qemu)
    seeds = interleaved(count, seed)
    sides = [Side("base", base_qemu), Side("series", series_qemu)]
    reusable = seed is not None and base_qemu.is_file()  # fresh seeds are runs no one made before
    kept = KeptBaseRuns(cache / "validate" / "base-runs", base_qemu, refs) if reusable else None
    tallies = run_sides(sides, refs, seeds, results, run_job, kept=kept, say=say)
    qemus = {side.name: str(side.qemu) for side in sides}
    return conclude(base, names, qemus, builds, seeds, tallies=tallies, results=results, say=say)


def reused_runs(results: Path, seeds: Sequence[int]) -> int:
    return sum((results / f"base-{i}" / REUSED).is_file() for i in range(1, len(seeds) + 1))


def judge_again(results: Path, say: Callable[[str], None] = print) -> Outcome:
    """A finished validation's runs judged again with today's rules and ``known-issues.json`` (after
    an issue is listed, or the rules change), without running anything: the table, page and json
    are written anew in ``results``."""
    try:
        before = json.loads((results / "validate.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"JUDGE={results}: not the results dir of a make validate (no validate.json)") from None
    tallies: dict[str, dict[str, Tally]] = {"base": {}, "series": {}}
    for i, seed in enumerate(before["seeds"], start=1):
        for side, by_test in tallies.items():
            run = results / f"{side}-{i}"
            if (run / REUSED).is_file():
                tally_results(json.loads((run / REUSED).read_text())["results"], seed, by_test)
            elif (run / "latest" / "results.json").is_file():
                tally_job((run / "latest").resolve(), seed, by_test)
            else:  # judged without it, every verdict would be wrong: nothing is written
                raise UserError(f"JUDGE={results}: {run.name} left no results (no {run.name}/latest/results.json "
                                f"nor {run.name}/{REUSED}); its verdicts cannot be judged again")  # fmt: skip
    base = Base(before["base"]["label"], Path(before["base"]["tree"]), Path(before["base"]["qemu"]))
    return conclude(base, before["series_patches"], before["qemus"], before["builds"], before["seeds"],
                    tallies=tallies, results=results, say=say)  # fmt: skip


def conclude(  # noqa: PLR0913 - what an outcome is made of
    base: Base, names: list[str], qemus: dict[str, str], builds: dict[str, dict[str, object]], seeds: list[int],
    *, tallies: dict[str, dict[str, Tally]], results: Path, say: Callable[[str], None],
) -> Outcome:  # fmt: skip
    """The verdicts of these tallies, written as validate.json and validate.html in ``results`` and said."""
    as_data = {side: {test: asdict(t) for test, t in by.items()} for side, by in tallies.items()}
    outcome = Outcome(base, names, qemus, builds, seeds, judge_all(tallies), as_data, reused_runs(results, seeds))
    (results / "validate.json").write_text(json.dumps(
        {**asdict(outcome), "base": asdict(base) | {"tree": str(base.tree), "qemu": outcome.qemus["base"]}},
        indent=1, default=str,
    ))  # fmt: skip
    (results / "validate.html").write_text(render_html(outcome, tallies))
    say(render_text(outcome, tallies).rstrip())
    return outcome
