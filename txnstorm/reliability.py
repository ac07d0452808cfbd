"""Reliability harness: does the suite leak, cry wolf, or hang?

    python -m txnstorm.reliability [--runs 20] [--interrupts 3]

Runs the quick tier ``--runs`` times in a row, then ``--interrupts`` more
runs stopped by SIGINT at a random moment, then one boot with an injected
hang (a QMP wait forced to expire); afterwards counts what is left behind:
QEMU processes of ours (``-name txnstorm-*``), NBD stamp writers, private
temp dirs (``$TMPDIR/txnstorm-*``) and stray images in the temp dir.  Also
counts FAIL/ERROR other than declared known issues (WARN).  Prints the
figures; exits 1 if anything leaked or a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .scratch import PREFIX

REPO = Path(__file__).resolve().parent.parent


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
        if ("qemu-system" in line and "-name txnstorm-" in line) or "txnstorm.nbd_stamps" in line:
            found.append(f"{proc.name}: {line[:120]}")
    return found


def leftovers() -> dict[str, list[str]]:
    tmp = Path(tempfile.gettempdir())
    return {
        "processes": our_processes(),
        "temp_dirs": sorted(str(p) for p in tmp.glob(f"{PREFIX}*")),
        "temp_images": sorted(str(p) for p in tmp.glob("*.qcow2")),
    }


def quick_run(results: Path, interrupt_after: float | None = None) -> dict[str, int]:
    avocado = Path(sys.executable).parent / "avocado"
    cmd = [str(avocado), "--config", "avocado.cfg", "run", "--job-results-dir", str(results),
           "--filter-by-tags=quick", *sorted(str(p) for p in (REPO / "tests").glob("*.py"))]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if interrupt_after is not None:
        time.sleep(interrupt_after)
        proc.send_signal(signal.SIGINT)
    proc.wait()
    try:
        tests = json.loads((results / "latest" / "results.json").read_text())["tests"]
    except (OSError, ValueError, KeyError):
        return {"NO_RESULTS": 1}
    counts: dict[str, int] = {}
    for test in tests:
        counts[test["status"]] = counts.get(test["status"], 0) + 1
    return counts


def injected_hang(logdir: Path) -> bool:
    """A QMP wait forced to expire: the error must name it and keep a backtrace."""
    from . import assets, sut
    from .boot import booted
    from .errors import DeadlineExceeded
    from .topology import Topology

    try:
        with booted(
            sut.resolve(), Topology("hang", ()), assets.ensure_guest(allow_build=False), "tcg", logdir, {}
        ) as b:
            b.vm.wait_event("NEVER_EMITTED", timeout=1.0, what="an event that never comes (injected hang)")
    except DeadlineExceeded as exc:
        return "injected hang" in str(exc) and (logdir / "qemu-backtrace.txt").is_file()
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--interrupts", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random()
    false_positives, totals = 0, {}
    (REPO / "results").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reliability-", dir=REPO / "results") as work:
        results = Path(work)
        for i in range(args.runs):
            counts = quick_run(results)
            bad = counts.get("FAIL", 0) + counts.get("ERROR", 0) + counts.get("NO_RESULTS", 0)
            false_positives += bad
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            print(f"run {i + 1}/{args.runs}: {counts}", flush=True)
        for i in range(args.interrupts):
            when = rng.uniform(3, 40)
            quick_run(results, interrupt_after=when)
            print(f"interrupted run {i + 1}/{args.interrupts}: SIGINT after {when:.1f} s", flush=True)
        hang_ok = injected_hang(results / "hang")
    time.sleep(1)
    left = leftovers()
    print(f"quick-tier runs: {args.runs}, test results {totals}, FAIL/ERROR (not known issues): {false_positives}")
    print(f"interrupted runs: {args.interrupts}; injected hang named with a backtrace: {hang_ok}")
    for kind, items in left.items():
        print(f"left behind: {kind}: {len(items)}" + "".join(f"\n  {x}" for x in items))
    return 0 if not false_positives and hang_ok and not any(left.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
