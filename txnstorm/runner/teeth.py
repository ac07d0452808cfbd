"""``make teeth``: would the suite catch a QEMU that has the bug class it exists for?

Each fault under ``teeth/<fault>/`` re-introduces one named bug class into
QEMU's source: ``README`` (its first line names the class) and one patch per
version family (``7.2.patch`` for 7.2's ``aio_disable_external`` drains,
``10.patch`` for 10.x's ``BlockDevOps`` drains).  For every QEMU source tree
``make qemu`` unpacked, each fault's patch is applied to a copy of the tree
(a patch that does not apply, or a family without a patch, is a row that
says so, never a silent skip), built by ``scripts/build-qemu`` into a cache
of its own (``<cache>/teeth``: the nightly does not pick fault builds up as
QEMUs under test), and the chosen tier runs against it.  The stock row is the
same tier against ``make qemu``'s unpatched build of that version.  A fault
is *caught* when a test FAILs or ERRORs on it; a stock row must be clean.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.runner import peer, runs

FAULTS_DIR = REPO / "teeth"
CAUGHT = ("FAIL", "ERROR")


@dataclass(frozen=True)
class Fault:
    name: str
    bug_class: str
    patches: dict[str, Path]  # version family ("7.2", "10") -> patch
    # Families whose fault the guest oracles can only see with KVM (README line
    # "Needs KVM on: 7.2"): a miss under TCG there is said, not counted.
    needs_kvm: frozenset[str] = frozenset()
    # A real upstream bug brought back (README line "Corpus: real bug", issue #35): what the tier
    # catches of them is a measurement, so a miss is said ("missed (real bug)"), not counted.
    real_bug: bool = False
    peer_tests: tuple[str, ...] = ()  # the fix's own regression tests in QEMU's iotests (README "Peer:")


@dataclass(frozen=True)
class Row:
    fault: str  # "stock" for the unpatched build
    version: str
    outcome: str  # "caught", "missed", "clean", "NOT CLEAN", or why nothing ran
    detail: str  # the tests that caught it (with their reason), or what went wrong
    seconds: float = 0.0
    first_fail_s: float | None = None  # from the first test's start to the end of the first catching test
    peer: str = ""  # QEMU's own iotests on the same build (TEETH_PEER=1: peer.py), else ""

    def line(self) -> str:
        first = f"{self.first_fail_s:6.0f} s" if self.first_fail_s is not None else f"{'-':>8}"
        peer = f"  | iotests: {self.peer}" if self.peer else ""
        return f"{self.fault:32} {self.version:10} {self.outcome:24} {self.seconds:6.0f} s {first}  {self.detail}{peer}"


def family(version: str) -> str:
    """'7.2.22' -> '7.2'; '10.2.2' -> '10' (the drain mechanism changed between them)."""
    return "7.2" if version.startswith("7.") else version.split(".", 1)[0]


def load_faults(directory: Path = FAULTS_DIR) -> list[Fault]:
    faults = []
    for path in sorted(p for p in directory.iterdir() if p.is_dir()):
        readme = path / "README"
        if not readme.is_file():
            raise UserError(f"{path}: no README naming the bug class the fault re-introduces")
        patches = {p.stem: p for p in sorted(path.glob("*.patch"))}
        lines = readme.read_text().splitlines()
        kvm = [line.split(":", 1)[1] for line in lines if line.startswith("Needs KVM on:")]
        families = frozenset(f.strip() for value in kvm for f in value.split(",") if f.strip())
        real = any(line.strip() == "Corpus: real bug" for line in lines)
        faults.append(Fault(path.name, lines[0].strip(), patches, families, real, peer.peer_tests(lines)))
    return faults


def shared_ccache(cache: Path) -> dict[str, str]:
    """The teeth builds compile through the compiler cache of ``make qemu``'s builds (in the cache
    root ``cache``): a fault's tree differs from its stock tree by one patch, so only the patched
    files are compiled."""
    return {"QEMU_CCACHE_DIR": str(cache / "ccache")}


def build_caches(cache: Path) -> list[Path]:
    """Where stock builds and their unpacked sources are in the cache root ``cache``: make qemu's
    cache, then the teeth cache (Debian 12's 7.2, fetched and built by teeth itself)."""
    return [cache / "qemu", cache / "teeth" / "qemu"]


def source_trees(cache: Path) -> dict[str, Path]:
    """{QEMU version: the unpacked Debian source tree a stock build came from}."""
    trees = {}
    for builds in build_caches(cache):
        for version_file in sorted((builds / "src").glob("*/qemu-*/VERSION")):
            trees.setdefault(version_file.read_text().strip(), version_file.parent)
    return trees


def stock_build(version: str, cache: Path) -> Path | None:
    """The unpatched build of ``version`` (its qemu-system-x86_64), if any:
    never a fault build, whose source is a patched copy under ``teeth/src``."""
    patched = cache / "teeth" / "src"
    for builds in build_caches(cache):
        for manifest in sorted(builds.glob("*/manifest.json")):
            data = json.loads(manifest.read_text())
            source = Path(data.get("source", ""))
            if source.is_relative_to(patched):
                continue
            if (source / "VERSION").is_file() and (source / "VERSION").read_text().strip() == version:
                return manifest.parent / "bin" / "qemu-system-x86_64"
    return None


def fetch_debian12(log: Path, cache: Path) -> str | None:
    """Debian 12's QEMU 7.2 (the default QEMU under test) from source, built
    stock into the teeth cache (cached: a second run only verifies it).  The
    7.2 faults need its tree; make qemu's builds are 10.x.  None, or why not."""
    env = {**os.environ, "TXNSTORM_CACHE": str(cache / "teeth"), "QEMU_DEB_SUITE": "bookworm", **shared_ccache(cache)}
    env.pop("QEMU_SRC", None)
    env.pop("QEMU_DEB_VERSION", None)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        done = subprocess.run([str(REPO / "scripts" / "build-qemu")], env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)  # fmt: skip
    return None if done.returncode == 0 else f"Debian 12's QEMU did not build (exit {done.returncode}; log {log})"


def patched_tree(tree: Path, fault: Fault, version: str, cache: Path) -> Path | str:
    """A patched copy of ``tree`` (kept in the teeth cache: a second run reuses it), or why there is none."""
    patch = fault.patches.get(family(version))
    if patch is None:
        return f"no patch for the {family(version)} family ({', '.join(fault.patches) or 'none'} exist)"
    copy = cache / "teeth" / "src" / f"{fault.name}-{version}"
    stamp = copy.with_name(copy.name + ".patch")  # beside the tree: build-qemu hashes every file in it
    if stamp.is_file() and stamp.read_text() == patch.read_text():
        return copy
    shutil.rmtree(copy, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    copy.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(tree), str(copy)], check=True)
    applied = subprocess.run(["patch", "-p1", "-s", "-d", str(copy), "-i", str(patch)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if applied.returncode != 0:
        shutil.rmtree(copy, ignore_errors=True)
        return f"{patch.name} does not apply: {(applied.stdout + applied.stderr).strip()[:200]}"
    stamp.write_text(patch.read_text())
    return copy


def build(tree: Path, log: Path, cache: Path) -> Path | str:
    """scripts/build-qemu on ``tree`` into the teeth cache; the binary, or why the build failed."""
    env = {**os.environ, "TXNSTORM_CACHE": str(cache / "teeth"), "QEMU_SRC": str(tree), **shared_ccache(cache)}
    with open(log, "w") as out:
        done = subprocess.run([str(REPO / "scripts" / "build-qemu")], env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)  # fmt: skip
    found = re.findall(r"^QEMU=(\S+)$", log.read_text(), re.MULTILINE)
    if done.returncode != 0 or not found:
        return f"build failed (exit {done.returncode}; log {log})"
    return Path(found[-1])


@dataclass(frozen=True)
class TierResult:
    verdicts: dict[str, tuple[str, str]]  # test -> (status, how it caught)
    seconds: float = 0.0
    accel: str = ""  # what the tests ran on (a fault that needs KVM is judged by it)
    first_fail_s: float | None = None  # how long after the first test started the first FAIL (or ERROR) came


def _clock(tests: Sequence[dict], key: str) -> list[float]:
    """Each test's wall-clock ``key`` (results.json's ``actual_time_start``/``_end``) where it has one."""
    return [t[key] for t in tests if isinstance(t.get(key), (int, float))]


def first_end_after_start(tests: Sequence[dict], catching: Sequence[dict]) -> float | None:
    """Seconds from the first of ``tests`` starting to the first of ``catching`` (some of them)
    ending (results.json's wall-clock ``actual_time_*``); None when none of them caught."""
    started, ended = _clock(tests, "actual_time_start"), _clock(catching, "actual_time_end")
    return round(min(ended) - min(started), 1) if started and ended else None


def first_fail_after(tests: Sequence[dict], caught: Sequence[str] = CAUGHT) -> float | None:
    """``first_end_after_start`` of the tests whose status is in ``caught``."""
    return first_end_after_start(tests, [t for t in tests if t.get("status") in caught])


def wall_seconds(tests: Sequence[dict], job_time: float) -> float:
    """The tier's wall time: the first test's start to the last one's end (results.json's ``time``
    is the tests' summed time, which overstates a job that ran them side by side)."""
    starts, ends = _clock(tests, "actual_time_start"), _clock(tests, "actual_time_end")
    return round(max(ends) - min(starts), 1) if starts and ends else job_time


def run_tier(qemu: Path, tags: Sequence[str], results: Path, jobs: int = 1, failfast: bool = False) -> TierResult:
    """The tier against ``qemu``, in the order ``make quick`` runs it (what caught soonest first:
    ``runs.CATCHES_FIRST``), so the 1st FAIL column is what ``FAILFAST=1`` waits for: each test's
    status and reason, the job's seconds, the accelerator."""
    avocado = runs.avocado_binary()
    ordered = runs.shard(runs.avocado_list(avocado, tags, runs.scenario_refs(), cwd=REPO), 1, 1)
    latest = runs.run_avocado_job(qemu, qemu.with_name("qemu-img"), tags, results, refs=ordered, jobs=jobs,
                                  failfast=failfast)  # fmt: skip
    try:
        data = json.loads((latest / "results.json").read_text())
    except (OSError, ValueError):
        return TierResult({})
    tests = data.get("tests", [])
    accel = next((a for t in tests if (a := runs.whiteboard(t).get("accel"))), "")
    verdicts = {t["name"]: (t["status"], first_detection(t)) for t in tests}
    return TierResult(verdicts, wall_seconds(tests, float(data.get("time") or 0.0)), accel, first_fail_after(tests))


def first_detection(test: dict) -> str:
    """How a caught test caught it: its reason line, and the round of the
    first oracle violation (of how many) when an oracle saw it."""
    reason = (test.get("fail_reason") or "").splitlines()[0][:160] if test.get("fail_reason") else ""
    return violation_round(test) + reason if test.get("status") in CAUGHT else reason


def violation_round(test: dict) -> str:
    """``[round 3 of 24] `` when an oracle of ``test`` saw a violation (its whiteboard), else ''."""
    board = runs.whiteboard(test)
    if board.get("first_violation_round") is None:
        return ""
    return f"[round {board['first_violation_round']} of {board.get('rounds')}] "


def judge(fault: str, version: str, tier: TierResult, needs_kvm: bool = False, real_bug: bool = False) -> Row:
    verdicts, seconds, accel, first = tier.verdicts, tier.seconds, tier.accel, tier.first_fail_s
    hits = [f"{name.split(':')[-1]}: {status} {reason}" for name, (status, reason) in verdicts.items()
            if status in CAUGHT]  # fmt: skip
    if not verdicts:
        return Row(fault, version, "no result", "the tier left no results.json", seconds)
    if fault == "stock":
        return Row(fault, version, "NOT CLEAN" if hits else "clean", "; ".join(hits), seconds, first)
    if not hits and needs_kvm and accel != "kvm":
        why = f"every test passed; the fault's README says the {family(version)} family needs KVM"
        return Row(fault, version, f"missed: needs KVM ({accel or '?'})", why, seconds)
    if not hits and real_bug:
        return Row(fault, version, "missed (real bug)", "every test passed (docs/teeth.md)", seconds)
    return Row(fault, version, "caught" if hits else "missed", "; ".join(hits) or "every test passed", seconds, first)


def no_source(unknown: Sequence[str], trees: dict[str, Path]) -> UserError:
    return UserError(f"no QEMU source for {', '.join(unknown)} (have {', '.join(trees) or 'none'}); "
                     "run 'make qemu' (QEMU_DEB_SUITE=...) first")  # fmt: skip


DEBIAN12_QEMU = Path("/usr/bin/qemu-system-x86_64")  # Debian 12's QEMU 7.2: its source is what 7.2's faults patch


def debian12_version() -> str | None:
    """The 7.2.x of Debian 12's installed QEMU (what ``fetch_debian12`` unpacks), if installed."""
    try:
        said = subprocess.run([str(DEBIAN12_QEMU), "--version"], capture_output=True, text=True, timeout=20,
                              check=False).stdout  # fmt: skip
    except OSError:
        return None
    found = re.search(r"version (7\.2\.\d+)", said)
    return found.group(1) if found else None


def check_versions(versions: Sequence[str], cache: Path, var: str = "TEETH_QEMUS") -> None:
    """Each version one to inject faults into: a source tree make qemu (or an earlier teeth run)
    unpacked, or Debian 12's 7.2.x, which teeth fetches; UserError before any fetch or build."""
    known = set(source_trees(cache))
    debian12 = debian12_version()
    if debian12:
        known.add(debian12)
    unknown = [v for v in versions if v not in known and not (debian12 is None and re.fullmatch(r"7\.2\.\d+", v))]
    if unknown:
        have = ", ".join(sorted(known)) or "none"
        raise UserError(f"{var}={' '.join(versions)}: no QEMU source for {', '.join(unknown)} (have {have}); "
                        "run 'make qemu' (QEMU_DEB_SUITE=...) first")  # fmt: skip


def chosen_faults(names: Sequence[str], faults: Sequence[Fault]) -> list[Fault]:
    """``TEETH_FAULTS``: every fault (nothing named), ``classes`` (the bug classes written for the
    suite), ``real`` (the real upstream bugs) or folder names of ``teeth/``; a name that is none of
    these is bad input."""
    if not names:
        return list(faults)
    unknown = [n for n in names if n not in ("classes", "real") and n not in {f.name for f in faults}]
    if unknown:
        raise UserError(f"TEETH_FAULTS: {unknown[0]} is not a fault; give classes, real or folder names of "
                        f"teeth/: {', '.join(f.name for f in faults)}")  # fmt: skip
    return [f for f in faults if f.name in names or ("real" if f.real_bug else "classes") in names]


def teeth(  # noqa: PLR0913 - the tier, its QEMUs and where builds are kept
    tags: Sequence[str], results: Path, versions: Sequence[str] = (), say: Callable[[str], None] = print,
    jobs: int = 1, *, cache: Path, faults: Sequence[Fault] | None = None, peers: bool = False,
    failfast: bool = False,
) -> list[Row]:
    """Every fault of ``teeth/`` (or ``faults``, as ``chosen_faults`` chose them) x every QEMU
    source make qemu unpacked (or ``versions``), and the stock rows; each tier with ``jobs`` tests
    side by side; ``cache``: the cache root (make qemu's builds, teeth's own); ``peers``: QEMU's
    own iotests of the area on every row's build too (``peer.py``), judged against the stock's;
    ``failfast``: a fault's tier stops at its first FAIL (what FAILFAST=1 waits for; the stock's runs
    whole, to prove it clean)."""
    faults = load_faults() if faults is None else faults
    peer_tests = peer.tests_for([t for f in faults for t in f.peer_tests])
    check_versions(versions, cache)  # bad input, before anything slow
    trees = source_trees(cache)
    rows = []
    if not versions or any(family(v) == "7.2" for v in versions):
        say("teeth: Debian 12's QEMU 7.2 from source (stock, cached after the first time)")
        failed = fetch_debian12(results / "build-stock-debian12.log", cache)
        if failed:
            rows.append(Row("stock", "7.2", "build failed", failed))
        trees = source_trees(cache)
    if versions:
        unknown = sorted(set(versions) - set(trees))
        if unknown:
            raise no_source(unknown, trees)
        trees = {v: trees[v] for v in versions}
    if not trees:
        raise UserError("no QEMU source tree to inject faults into; run 'make qemu' first")
    for version, tree in trees.items():
        stock = stock_build(version, cache)
        stock_peers = None
        if stock is None:
            rows.append(Row("stock", version, "no stock build", "run 'make qemu' for this version"))
        else:
            say(f"teeth: stock {version}: running the tier")
            row = judge("stock", version, run_tier(stock, tags, results / f"stock-{version}", jobs))
            if peers:
                say(f"teeth: stock {version}: QEMU's own iotests of the area")
                stock_peers = peer.run(tree, stock.parent, peer_tests, results / f"iotests-stock-{version}.log")
                row = dataclasses.replace(row, peer=peer.stock_said(stock_peers))
            rows.append(row)
        for fault in faults:
            prepared = patched_tree(tree, fault, version, cache)
            if isinstance(prepared, str):
                rows.append(Row(fault.name, version, "not applicable", prepared))
                continue
            say(f"teeth: {fault.name} {version}: building (cached after the first time)")
            qemu = build(prepared, results / f"build-{fault.name}-{version}.log", cache)
            if isinstance(qemu, str):
                rows.append(Row(fault.name, version, "build failed", qemu))
                continue
            say(f"teeth: {fault.name} {version}: running the tier")
            tier = run_tier(qemu, tags, results / f"{fault.name}-{version}", jobs, failfast)
            row = judge(fault.name, version, tier, family(version) in fault.needs_kvm, fault.real_bug)
            if peers:
                say(f"teeth: {fault.name} {version}: QEMU's own iotests of the area")
                ran = peer.run(prepared, qemu.parent, peer_tests, results / f"iotests-{fault.name}-{version}.log")
                row = dataclasses.replace(row, peer=peer.judge(ran, stock_peers).said)
            rows.append(row)
    return rows
