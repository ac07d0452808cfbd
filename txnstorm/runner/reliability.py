"""Reliability harness: does the suite leak, cry wolf, or hang?

    python -m txnstorm.runner.reliability [--runs 20] [--interrupts 3] [--load N]

Runs the quick tier ``--runs`` times in a row, then ``--interrupts`` more
runs stopped by SIGINT at a random moment, then one boot with an injected
hang (a QMP wait forced to expire); afterwards counts what is left behind:
QEMU processes of ours (``-name txnstorm-*``), NBD stamp writers, private
temp dirs (``txnstorm-*`` in /tmp, /var/tmp and $TMPDIR) and stray images
there, after every run and against what was there before the first.  Also
counts FAIL/ERROR other than declared known issues (WARN).  Prints the
figures; exits 1 if anything leaked or a run failed.

``--load N`` (``make reliability LOAD=N``) runs it all beside N CPU hogs
(``yes >/dev/null``, started before the first run and ended by their PIDs
after the last, also on Ctrl-C): a loaded CI runner, where a gate must stay
green on a healthy QEMU (issue #22).  Each run prints its FAIL, ERROR and
WARN counts, how long it took and what it left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from txnstorm import REPO
from txnstorm.host import scratch
from txnstorm.host.scratch import PREFIX
from txnstorm.runner import entry
from txnstorm.runner.runs import avocado_binary
from txnstorm.settings import Settings

# Caches meant to outlive runs (guests/*/build.sh default), not leaks.
SHARED_CACHES = {"txnstorm-build-cache"}


def our_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in args if a)
        if ("qemu-system" in line and "-name txnstorm-" in line) or "txnstorm.workload.nbd_stamps" in line:
            found.append(f"{proc.name}: {line[:120]}")
    return found


def temp_roots() -> list[Path]:
    """Every temp dir a run may use: Avocado's test processes do not share
    the harness's idea of it (they get /var/tmp where we get /tmp)."""
    roots = {Path(tempfile.gettempdir()), *scratch.temp_roots()}
    if os.environ.get("TMPDIR"):
        roots.add(Path(os.environ["TMPDIR"]))
    return sorted(r for r in roots if r.is_dir())


def leftovers() -> dict[str, set[str]]:
    dirs, images = set(), set()
    for root in temp_roots():
        dirs |= {str(p) for p in root.glob(f"{PREFIX}*") if p.name not in SHARED_CACHES}
        images |= {str(p) for ext in ("qcow2", "raw") for p in root.glob(f"*.{ext}")}
    return {"processes": set(our_processes()), "temp_dirs": dirs, "temp_images": images}


def new_since(before: dict[str, set[str]]) -> dict[str, set[str]]:
    """What is left now that was not there before (other users' files are not ours)."""
    now = leftovers()
    return {kind: now[kind] - before.get(kind, set()) for kind in now}


def quick_run(results: Path, interrupt_after: float | None = None) -> dict[str, int]:
    """One quick-tier job; its results are deleted unless something failed."""
    avocado = avocado_binary()
    cmd = [str(avocado), "--config", "avocado.cfg", "run", "--job-results-dir", str(results),
           "--filter-by-tags=quick", *sorted(str(p) for p in (REPO / "tests").glob("*.py"))]  # fmt: skip
    before = set(results.glob("job-*"))
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    counts: dict[str, int] = {}
    if interrupt_after is not None:
        try:
            proc.wait(timeout=interrupt_after)
            counts = {"ENDED_BEFORE_SIGINT": 1}
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            start = time.monotonic()
            proc.wait()
            counts = {"SIGINT_EXIT_S": round(time.monotonic() - start)}
    else:
        try:
            proc.wait()
        except KeyboardInterrupt:  # Ctrl-C on the harness: stop the job it runs too
            proc.send_signal(signal.SIGINT)
            proc.wait()
            raise
        try:
            for test in json.loads((results / "latest" / "results.json").read_text())["tests"]:
                counts[test["status"]] = counts.get(test["status"], 0) + 1
                board = json.loads(test.get("whiteboard") or "{}")
                # a control's rounds its writer was too slow to judge (a loaded host), before the logs go
                if unjudged := board.get("not_judged", 0):
                    counts["checks not judged"] = counts.get("checks not judged", 0) + unjudged
                if test["status"] == "WARN" and (issue := warned_issue(board)):  # which known issue
                    counts[f"WARN {issue}"] = counts.get(f"WARN {issue}", 0) + 1
                    # the reason line is the evidence (a clean run's logs go): kept in the harness's output
                    reason = " ".join(str(test.get("fail_reason") or "").split())[:600]
                    print(f"  WARN {test.get('name', '?')}: {reason}", flush=True)
        except (OSError, ValueError, KeyError):
            counts = {"NO_RESULTS": 1}
    for job in set(results.glob("job-*")) - before:
        if failures(counts):
            counts["KEPT"] = 1
            print(f"  logs kept: {job}", flush=True)
        else:
            shutil.rmtree(job, ignore_errors=True)
    return counts


def warned_issue(board: dict) -> str | None:
    """The known issue a WARN names (a listed failure's, or a reproducer's verdict)."""
    failure = board.get("failure") if isinstance(board.get("failure"), dict) else {}
    known = board.get("known_issue") if isinstance(board.get("known_issue"), dict) else {}
    issue = failure.get("known_issue") or known.get("issue")
    if issue and known and not known.get("reproduced") and not failure:
        return f"{issue} not seen"
    return issue


def start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    """N CPU hogs (``yes >/dev/null``), each ended by its PID with ``end_hogs``."""
    return [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL) for _ in range(n)]


def end_hogs(hogs: list[subprocess.Popen[bytes]]) -> list[int]:
    """End each hog by its PID; returns the PIDs of those that were still running (all, normally)."""
    ended = []
    for hog in hogs:
        if hog.poll() is None:
            hog.kill()
            ended.append(hog.pid)
        hog.wait()
    return ended


def describe_run(counts: dict[str, int], seconds: float) -> str:
    """'FAIL 0, ERROR 0, WARN 3 (PASS 13) in 582 s' (and whatever else the job said)."""
    main = ", ".join(f"{k} {counts.get(k, 0)}" for k in ("FAIL", "ERROR", "WARN"))
    rest = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("FAIL", "ERROR", "WARN"))
    return f"{main} ({rest}) in {seconds:.0f} s"


def failures(counts: dict[str, int]) -> int:
    return counts.get("FAIL", 0) + counts.get("ERROR", 0) + counts.get("NO_RESULTS", 0)


def injected_hang(logdir: Path, settings: Settings) -> bool:
    """A QMP wait forced to expire: the error must name it and keep a backtrace (on the QEMU,
    accelerator and watch the settings name)."""
    from txnstorm.errors import DeadlineExceeded
    from txnstorm.vm import testbed
    from txnstorm.vm.boot import booted
    from txnstorm.vm.machine import Machine
    from txnstorm.vm.topology import Topology

    try:
        bed = testbed.set_up(settings, needs_caps=False)
        assert bed.platform is not None and bed.guest is not None  # a guest was asked for
        vm = Machine(bed.platform, Topology("hang", ()), logdir, {})
        with booted(vm, bed.guest) as b:
            b.vm.wait_event("NEVER_EMITTED", timeout=1.0, what="an event that never comes (injected hang)")
    except DeadlineExceeded as exc:
        return "injected hang" in str(exc) and (logdir / "qemu-backtrace.txt").is_file()
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--interrupts", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="CPU hogs (yes >/dev/null) beside the runs")
    args = parser.parse_args()
    if args.load < 0 or args.runs < 0 or args.interrupts < 0:
        parser.error("--runs, --interrupts and --load take a count (0 or more)")
    return entry.run(lambda settings: campaign(args, settings), prog="make reliability")


def campaign(args: argparse.Namespace, settings: Settings) -> int:
    """The runs, with the settings read once before the first: a wrong setting costs no run."""
    # A shell starting us in the background (no job control) ignores SIGINT
    # and children inherit that: the interrupts would silently do nothing.
    # A handled signal is reset to the default on exec; an ignored one is not.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = random.Random()
    totals: dict[str, int] = {}
    leaked: dict[str, set[str]] = {}
    baseline = leftovers()

    def account(label: str) -> str:
        # Counted after every run: the next run's sweep of dead owners' dirs
        # would otherwise hide what this one left.
        time.sleep(1)
        new = new_since(baseline)
        for kind, items in new.items():
            leaked.setdefault(kind, set()).update(items)
        n = sum(len(v) for v in new.values())
        return f"{label}: left behind {n}" + "".join(f"\n  {k}: {x}" for k, v in new.items() for x in sorted(v))

    (REPO / "results").mkdir(exist_ok=True)
    results = Path(tempfile.mkdtemp(prefix="reliability-", dir=REPO / "results"))
    hogs = start_hogs(args.load)
    if hogs:
        print(f"load: {len(hogs)} CPU hogs (yes >/dev/null), PIDs {[h.pid for h in hogs]}", flush=True)
    try:
        false_positives, interrupted, hang_ok = runs(args, results, rng, totals, account, settings=settings)
    finally:
        ended = end_hogs(hogs)
    if hogs:
        print(f"load: ended {len(ended)} of {len(hogs)} CPU hogs by PID {ended}", flush=True)
    if not any(results.glob("job-*")) and not (results / "hang").exists():
        shutil.rmtree(results, ignore_errors=True)  # nothing failed: nothing to keep
    load = f" beside {args.load} CPU hogs" if args.load else ""
    print(f"quick-tier runs: {args.runs}{load}, test results {totals}, "
          f"FAIL/ERROR (not known issues): {false_positives}")  # fmt: skip
    print(f"runs stopped by SIGINT: {interrupted} of {args.interrupts}; injected hang named: {hang_ok}")
    for kind in ("processes", "temp_dirs", "temp_images"):
        print(f"left behind over all runs: {kind}: {len(leaked.get(kind, ()))}")
    ok = not false_positives and hang_ok and interrupted == args.interrupts and not any(leaked.values())
    return 0 if ok else 1


def runs(  # noqa: PLR0913 - the harness's inputs and its tallies
    args: argparse.Namespace, results: Path, rng: random.Random, totals: dict[str, int],
    account: Callable[[str], str], *, settings: Settings,
) -> tuple[int, int, bool]:  # fmt: skip
    """The quick-tier runs, the interrupted ones and the injected hang: (FAIL/ERROR, runs stopped, hang named)."""
    false_positives = 0
    for i in range(args.runs):
        started = time.monotonic()
        counts = quick_run(results)
        false_positives += failures(counts)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        print(account(f"run {i + 1}/{args.runs}: {describe_run(counts, time.monotonic() - started)}"), flush=True)
    interrupted = 0
    for i in range(args.interrupts):
        when = rng.uniform(3, 40)
        outcome = quick_run(results, interrupt_after=when)
        interrupted += "SIGINT_EXIT_S" in outcome
        what = f"exited {outcome['SIGINT_EXIT_S']} s later" if "SIGINT_EXIT_S" in outcome else "had ended before"
        print(account(f"interrupted run {i + 1}/{args.interrupts}: SIGINT after {when:.1f} s, {what}"), flush=True)
    hang_ok = injected_hang(results / "hang", settings)
    print(account(f"injected hang named with a backtrace: {hang_ok}"), flush=True)
    if hang_ok:
        shutil.rmtree(results / "hang", ignore_errors=True)
    return false_positives, interrupted, hang_ok


if __name__ == "__main__":
    sys.exit(main())
