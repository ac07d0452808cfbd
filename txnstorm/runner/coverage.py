"""``make coverage``: where the suite is blind.  QEMU built with gcov, a tier (or QEMU's own iotests
of the area, the peer row) run against it, and a map of what ran in the files the suite exists for
(``mutants.FILES``): line, branch and function coverage per file and per function, and the
headline: of the functions that take part in a drained section or a transaction
(``csource.taking_part``), which the run reached and which it never did.

    make coverage [TAGS=quick]                 # the tier on the gcov build
    make coverage-iotests                      # QEMU's iotests of the area on the same build

The gcov build is ``make qemu``'s 10.2.2 source with ``--enable-gcov``, built by
``scripts/build-qemu`` into its own cache (``$TXNSTORM_CACHE/coverage``: no QEMU under test picks it
up) through the shared compiler cache, and its build dir is kept (``QEMU_BUILD_DIR``): the
binaries write their counters (``.gcda``) beside its objects, by absolute path.  The counters are
reset before each run, and only the processes that end normally write them (a QEMU killed by
SIGKILL or an assertion adds nothing).  Results: ``results/coverage/<name>/`` with ``index.html``
(gcovr's pages, per file and function), ``table.txt``, ``coverage.json`` (gcovr's data) and
``summary.json`` (ours); with both a tier and the iotests measured, ``union.txt`` says what each
reaches that the other does not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from txnstorm import REPO
from txnstorm.errors import TxnstormError, UserError
from txnstorm.runner import csource, mutants, peer, runs, teeth

VERSION = "10.2.2"  # the source make qemu unpacked that the gcov build is made of
GCOV_FLAGS = "--enable-gcov"
BINARIES = ("qemu-system-x86_64", "qemu-img", "qemu-io", "storage-daemon/qemu-storage-daemon")
IOTEST_BINARIES = ("qemu-nbd", *BINARIES)  # what the tree's check runs from the build dir (peer.IOTESTS)


@dataclass(frozen=True)
class GcovBuild:
    qemu: Path  # the entry's qemu-system-x86_64 (writes its counters into work/build)
    work: Path  # the kept build dir: src/ (hard links of the source) and build/

    @property
    def build(self) -> Path:
        return self.work / "build"

    @property
    def src(self) -> Path:
        return self.work / "src"


def source_tree(cache: Path, version: str = VERSION) -> Path:
    tree = teeth.source_trees(cache).get(version)
    if tree is None:
        raise UserError(f"no QEMU {version} source in {cache}/qemu/src; run 'make qemu' (QEMU_DEB_SUITE=sid) first")
    return tree


def check_iotests(tree: Path, tests: Sequence[str]) -> None:
    """Each name an iotest of ``tree`` (``tests/qemu-iotests/NNN`` or ``.../tests/NAME``); UserError."""
    iotests = tree / "tests" / "qemu-iotests"
    unknown = [t for t in tests if not ((iotests / t).is_file() or (iotests / "tests" / t).is_file())]
    if unknown:
        raise UserError(f"IOTESTS: no such iotest in {iotests}: {' '.join(unknown)} (e.g. 055, qsd-jobs)")


def build_env(cache: Path, tree: Path, work: Path, extra: str) -> dict[str, str]:
    env = {**os.environ, "TXNSTORM_CACHE": str(work.parent), "QEMU_SRC": str(tree),
           "QEMU_BUILD_DIR": str(work), "QEMU_CONFIGURE_EXTRA": extra, **teeth.shared_ccache(cache)}  # fmt: skip
    env.pop("QEMU_DEB_VERSION", None)
    return env


def kept_build(cache: Path, extra: str, home: Path, log: Path, say: Callable[[str], None]) -> tuple[Path, Path]:
    """scripts/build-qemu of make qemu's source with ``extra`` configure flags into ``home`` (its own
    cache), its build dir kept in ``home/work``: (the entry's qemu-system-x86_64, the build dir).  An
    entry whose build dir is gone is built again."""
    tree, work = source_tree(cache), home / "work"
    env = build_env(cache, tree, work, extra)
    log.parent.mkdir(parents=True, exist_ok=True)
    for _attempt in range(2):
        started = time.monotonic()
        with open(log, "w") as out:
            done = subprocess.run([str(REPO / "scripts" / "build-qemu")], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, check=False)  # fmt: skip
        found = re.findall(r"^QEMU=(\S+)$", log.read_text(), re.MULTILINE)
        if done.returncode != 0 or not found:
            raise TxnstormError(f"the build failed (exit {done.returncode}; log {log})")
        qemu = Path(found[-1])
        if (work / "build" / "build.ninja").is_file():
            say(f"build: {qemu.parent.parent.name} in {time.monotonic() - started:.0f} s (build dir {work})")
            return qemu, work
        say(f"build: {qemu.parent.parent} has no kept build dir; building it again")
        shutil.rmtree(qemu.parent.parent)
    raise TxnstormError(f"build-qemu kept no build dir in {work} (log {log})")


def gcov_build(cache: Path, log: Path, say: Callable[[str], None] = print) -> GcovBuild:
    qemu, work = kept_build(cache, GCOV_FLAGS, cache / "coverage", log, say)
    return GcovBuild(qemu, work)


def reset_counters(build: GcovBuild) -> int:
    """Delete every .gcda of the build (the counters of earlier runs); how many."""
    gone = 0
    for path in build.build.rglob("*.gcda"):
        path.unlink()
        gone += 1
    return gone


def object_name(source: str) -> str:
    """The .gcda name meson gives a source file's object: block/io.c -> block_io.c.gcda."""
    return source.replace("/", "_") + ".gcda"


def counter_files(build: GcovBuild, files: Sequence[str]) -> list[Path]:
    """The .gcda files of ``files`` (relative source paths) the run wrote."""
    names = {object_name(f) for f in files}
    return sorted(p for p in build.build.rglob("*.gcda") if p.name in names)


def run_gcovr(build: GcovBuild, files: Sequence[str], out: Path) -> dict:
    """gcovr over the counters of ``files``: ``out/index.html`` (+ a page per file), ``coverage.json``;
    gcovr's JSON data."""
    out.mkdir(parents=True, exist_ok=True)
    gcovr = Path(runs.avocado_binary()).with_name("gcovr")
    counters = counter_files(build, files)
    if not counters:
        raise TxnstormError(f"no .gcda counters of {', '.join(files[:3])}... in {build.build}: did QEMU run and exit?")
    filters = [f"--filter={re.escape(str(build.src / f))}$" for f in files]
    cmd = [str(gcovr), "--root", str(build.src), "--object-directory", str(build.build), *filters,
           "--gcov-ignore-parse-errors=all", "--gcov-ignore-errors=source_not_found", "-j", "1",
           "--html-details", str(out / "index.html"), "--html-title", f"txnstorm coverage: {out.name}",
           "--json", str(out / "coverage.json"), *map(str, counters)]  # fmt: skip
    done = subprocess.run(["nice", "-n", "19", *cmd], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TxnstormError(f"gcovr failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}")
    return json.loads((out / "coverage.json").read_text())


# ------------------------------------------------------------------ the map (pure)


def taking_part(tree: Path, files: Sequence[str]) -> dict[str, dict[str, str]]:
    """{file: {function: why}} of the functions that take part in a drained section or a transaction."""
    return {f: csource.taking_part((tree / f).read_text(errors="replace")) for f in files}


def _pct(hit: int, total: int) -> float:
    return round(100.0 * hit / total, 1) if total else 0.0


def function_counts(entry: Mapping) -> dict[str, int]:
    """{function: how often it ran} of one file of gcovr's data: its entry counter, or, where that
    is 0, the most any of its lines ran.  QEMU builds at -O2, and GCC inlines small static
    functions early, before it instruments them: ``bdrv_wakeup``'s entry counter stays 0 while its
    lines count every call of ``bdrv_dec_in_flight`` (measured on 10.2.2).  A line's own count is
    no better (``aio_wait_kick();`` in ``bdrv_wakeup`` counts 0 there too), so nothing here trusts
    one line."""
    calls: dict[str, int] = {}
    for fn in entry.get("functions", []):
        name = str(fn.get("demangled_name") or fn.get("name", ""))
        calls[name] = calls.get(name, 0) + int(fn.get("execution_count", 0) or 0)
    most: dict[str, int] = {}
    for line in entry.get("lines", []):
        name, count = str(line.get("function_name", "")), int(line.get("count", 0) or 0)
        most[name] = max(most.get(name, 0), count)
    return {name: count or most.get(name, 0) for name, count in calls.items()}


def file_entry(data: Mapping, source: str) -> Mapping | None:
    """gcovr's entry of ``source`` (a path relative to the tree; gcovr's may be absolute)."""
    return next((f for f in data.get("files", []) if str(f.get("file", "")) == source
                 or str(f.get("file", "")).endswith("/" + source)), None)  # fmt: skip


def summarize(data: Mapping, files: Sequence[str], part: Mapping[str, Mapping[str, str]], name: str) -> dict:
    """Our summary of gcovr's JSON ``data``: per file lines, branches and functions (hit, total), each
    function's call count, and the functions of ``part`` the run reached and missed."""
    out: dict = {"name": name, "files": {}, "reached": {}, "never": {}, "not_built": []}
    for source in files:
        entry = file_entry(data, source)
        if not (entry or {}).get("lines"):  # not compiled in this configuration (fuse.c without libfuse)
            out["not_built"].append(source)
            continue
        lines = (entry or {}).get("lines", [])
        branches = [b for ln in lines for b in ln.get("branches", [])]
        calls = function_counts(entry or {})
        out["files"][source] = {
            "lines": [sum(1 for ln in lines if ln.get("count", 0) > 0), len(lines)],
            "branches": [sum(1 for b in branches if b.get("count", 0) > 0), len(branches)],
            "functions": [sum(1 for c in calls.values() if c > 0), len(calls)],
            "calls": calls,
        }
        wanted = part.get(source, {})
        out["reached"][source] = sorted(f for f in wanted if calls.get(f, 0) > 0)
        out["never"][source] = {f: why for f, why in sorted(wanted.items()) if calls.get(f, 0) == 0}
    return out


def headline(summary: Mapping) -> tuple[int, int]:
    """(functions taking part that the run reached, of how many)."""
    reached = sum(len(v) for v in summary["reached"].values())
    return reached, reached + sum(len(v) for v in summary["never"].values())


def table(summary: Mapping) -> str:
    """The short text table: per file lines, branches, functions, the taking-part functions reached."""
    rows = [f"{'file':38} {'lines':>15} {'branches':>15} {'functions':>13} {'drain/txn fns':>13}"]
    for source, f in summary["files"].items():
        (lh, lt), (bh, bt), (fh, ft) = f["lines"], f["branches"], f["functions"]
        reached, never = len(summary["reached"][source]), len(summary["never"][source])
        rows.append(f"{source:38} {lh:5}/{lt:<5} {_pct(lh, lt):3.0f}% {bh:5}/{bt:<5} {_pct(bh, bt):3.0f}% "
                    f"{fh:4}/{ft:<4} {_pct(fh, ft):3.0f}% {reached:6}/{reached + never:<6}")  # fmt: skip
    if summary.get("not_built"):
        rows.append(f"not built in this configuration (left out): {', '.join(summary['not_built'])}")
    hit, total = headline(summary)
    rows.append(f"{summary['name']}: reaches {hit} of the {total} functions that take part in a drained section "
                f"or a transaction ({_pct(hit, total):.0f} %); never:")  # fmt: skip
    for source, never in summary["never"].items():
        rows += [f"  {source}: {fn} ({why})" for fn, why in never.items()]
    return "\n".join(rows) + "\n"


def union(one: Mapping, other: Mapping) -> str:
    """What each of two summaries reaches of the taking-part functions that the other does not."""
    def reached(s: Mapping) -> set[tuple[str, str]]:
        return {(f, fn) for f, fns in s["reached"].items() for fn in fns}

    def every(s: Mapping) -> set[tuple[str, str]]:
        return reached(s) | {(f, fn) for f, fns in s["never"].items() for fn in fns}

    a, b, total = reached(one), reached(other), every(one) | every(other)
    rows = [f"{one['name']}: {len(a)}, {other['name']}: {len(b)}, union: {len(a | b)}, neither: "
            f"{len(total - a - b)} of {len(total)} functions taking part"]  # fmt: skip
    for title, found in ((f"only {one['name']}", a - b), (f"only {other['name']}", b - a),
                         ("neither", total - a - b)):  # fmt: skip
        rows.append(f"{title} ({len(found)}):")
        rows += [f"  {f}: {fn}" for f, fn in sorted(found)]
    return "\n".join(rows) + "\n"


def write(summary: dict, out: Path) -> str:
    text = table(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "table.txt").write_text(text)
    return text


def results_name(tags: Sequence[str]) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", "+".join(tags)) or "all"


# ------------------------------------------------------------------ the runs


def run_tier(build: GcovBuild, refs: Sequence[str], results: Path, jobs: int) -> tuple[float, str]:
    """The tier's tests against the gcov build: (seconds, the verdict counts)."""
    latest, seconds = runs.run_scenarios(refs, results / "job", qemu=build.qemu, jobs=jobs)
    if latest is None:
        return seconds, "no job"
    counts = runs.job_summary(latest).statuses
    return seconds, ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def prepare_iotests(build: GcovBuild) -> Path:
    """The build dir ready for the tree's iotests: qemu-nbd built beside ``BINARIES`` (check wants it)
    and the entry's firmware where QEMU run from the build dir looks; the build dir's ``check``.
    ``make coverage-iotests`` on the gcov build, ``make mutants MUTANTS_PEER=iotests`` on the mutants'."""
    ninja = subprocess.run(["nice", "-n", "19", "ninja", "-C", str(build.build), *IOTEST_BINARIES],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if ninja.returncode != 0:
        raise TxnstormError(f"ninja qemu-nbd failed: {ninja.stdout[-400:]}")
    # The build dir's firmware: make qemu's source is Debian's (+ds, no blobs) and built with
    # --disable-install-blobs, so QEMU run from the build dir finds no bios-256k.bin; the entry's
    # share/qemu links Debian's firmware (scripts/build-qemu).
    bundle = build.build / "qemu-bundle" / "usr" / "local" / "share" / "qemu"
    bundle.mkdir(parents=True, exist_ok=True)
    for firmware in (build.qemu.parent.parent / "share" / "qemu").iterdir():
        if not (bundle / firmware.name).exists():
            (bundle / firmware.name).symlink_to(firmware.resolve())
    check = build.build / "tests" / "qemu-iotests" / "check"
    if not check.exists():
        raise TxnstormError(f"{check}: not in the build dir")
    return check


def run_iotests(build: GcovBuild, tests: Sequence[str], log: Path) -> tuple[float, str]:
    """QEMU's iotests ``tests`` with the tree's check -qcow2 from the gcov build dir (qemu-nbd built
    there first): (seconds, check's last line)."""
    ran = peer.run_check(prepare_iotests(build), ["-qcow2", *tests])
    log.write_text(ran.output)
    said = [ln for ln in ran.output.splitlines() if ln.strip()]
    return ran.seconds, (said[-1] if said else "no output")


def measure(  # noqa: PLR0913 - what runs, where, and how to say it
    name: str, results: Path, cache: Path, run: Callable[[GcovBuild, Path], tuple[float, str]],
    *, say: Callable[[str], None] = print, files: Sequence[str] = mutants.FILES,
) -> dict:
    """Build (cached), reset the counters, ``run``, then the map: results/coverage/<name>/."""
    out = results / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    build = gcov_build(cache, out / "build.log", say)
    say(f"coverage: {reset_counters(build)} counter files reset")
    seconds, verdicts = run(build, out)
    say(f"coverage: {name} ran in {seconds:.0f} s ({verdicts}); gcovr")
    sources = mutants.source_files(build.src, files)
    started = time.monotonic()
    summary = summarize(run_gcovr(build, sources, out), sources, taking_part(build.src, sources), name)
    summary.update(seconds=round(seconds, 1), verdicts=verdicts, gcovr_seconds=round(time.monotonic() - started, 1))
    say(write(summary, out).rstrip())
    say(f"coverage: {out / 'index.html'}")
    others = [p for p in results.glob("*/summary.json") if p.parent != out]
    for path in others:
        other = json.loads(path.read_text())
        both = union(summary, other)
        (out / f"union-{other['name']}.txt").write_text(both)
        (path.parent / f"union-{name}.txt").write_text(union(other, summary))  # theirs, no longer stale
        say(both.splitlines()[0])
    return summary
