"""Death at every stage: is QEMU's death the verdict, whichever channel notices it first?

``make deaths`` runs a scenario test with the QEMU under test (``QEMU=``, default Debian's) or its
qemu-storage-daemon behind a wrapper that sends it SIGABRT (a crash) or SIGSTOP (a hang) at one
stage of the test, and prints the matrix stage x signal x process -> verdict.  The stage is driven by the test's own
progress, never by a timer: the wrapper waits (``tail -F``, at once) for a step in the process's
``qmp.log`` (the notes the story writes: "guest reachable over SSH", "round 1: firing",
"transaction of 3 actions", "storm stopping", ...; for a cold boot, QEMU's QMP greeting).
Each case must end FAIL naming the stage, or PASS where the test ended before the death; never
ERROR, which ``bisect-run`` would answer as "skip" (125) instead of "bad" (1).  The same wrapper
serves the unit stage (``tests/unit/test_deaths.py``).

Real QEMU, real guest; each case is one Avocado job of one test (8-70 s: a stopped QEMU that an
SSH command meets first is named only after that command's timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from txnstorm.host.sut import SystemUnderTest
from txnstorm.runner import entry, runs
from txnstorm.settings import Settings
from txnstorm.vm import storage_daemon, testbed

DEBIAN = Path("/usr/bin")  # Debian's QEMU: the programs behind the wrapper unless QEMU names others
VM, DAEMON = "qemu-system-x86_64", "qemu-storage-daemon"
VM_TEST = "tests/transaction_snapshot_backup.py:SnapshotBackupTransaction.test_backup_equals_frozen_base"
DAEMON_TEST = "tests/storage_daemon.py:DaemonNbdStorm.test_one_point_in_time_exports_in_main_loop"
GUEST_ON_DAEMON_TEST = "tests/vhost_user_blk.py:GuestOnVhostUserBlk.test_one_point_in_time_exports_in_main_loop"
SIGNALS = ("ABRT", "STOP")
QMP_ANSWER_S = "10"  # the QMP window of every case: a stop is named in seconds, not the default minute

# The wrapper: the real program ({real}: the QEMU under test's, or its daemon), sent DEATH_SIGNAL once the
# log DEATH_LOG beside its stderr log (its log dir) shows DEATH_MARKER; only the program named
# DEATH_OF, only a launch with the argument DEATH_LAUNCH (the guest's QEMU, not its schema probe),
# and only one whose stderr is a log file (not ``--version``).
WRAPPER = """#!/bin/sh
# txnstorm test double (txnstorm/runner/deaths.py)
real="{real}"
if [ "$(basename "$0")" = "$DEATH_OF" ] && [ -n "$DEATH_MARKER" ]; then
    stderr=$(readlink /proc/$$/fd/2)
    case "$stderr -- $* " in /*/qemu-stderr.log*" $DEATH_LAUNCH "*)
        log="${{stderr%/*}}/$DEATH_LOG"
        (tail -n 0 -F --pid=$$ "$log" 2>/dev/null | grep -qF -m1 -- "$DEATH_MARKER" &&
         kill -"$DEATH_SIGNAL" $$ 2>/dev/null &&
         echo "SIG$DEATH_SIGNAL at '$DEATH_MARKER'" >> "${{stderr%/*}}/death-injected.txt") &
    esac
fi
exec "$real" "$@"
"""


@dataclass(frozen=True)
class Stage:
    """One stage of a test, as the process's own logs show it."""

    name: str
    marker: str  # the text whose appearance sends the signal
    log: str = "qmp.log"
    boot: str = "cold"  # TXNSTORM_BOOT: cold, or restore for a saved guest's load
    launch: str = ""  # the argument of the launch to kill (default: the process's own, LAUNCHES)


LAUNCHES = {"qemu-system-x86_64": "-kernel", "qemu-storage-daemon": "--export"}


# The stages of the guest's QEMU in the VM test's story (boot, storm, fire, stop, quit).  During
# verification no QEMU runs: it has quit, every image closed.
VM_STAGES = (
    Stage("capability probe", '<- {"QMP": ', launch="none"),  # -machine none: the schema probe
    Stage("cold boot", '<- {"QMP": '),  # its greeting: the guest boots for seconds after it
    Stage("restore", "## loading the saved guest", boot="restore"),
    Stage("before the storm", "## guest reachable over SSH"),
    Stage("storm starts", "## rounds prepared"),
    Stage("transaction", "## transaction of"),
    Stage("mid-round", ": transaction answered"),
    Stage("storm stops", "## storm stopping"),
    Stage("QEMU quits", "## storm finished"),
)
DAEMON_STAGES = (
    Stage("daemon start", "## qemu-storage-daemon up"),
    Stage("storm starts", "## rounds prepared"),
    Stage("transaction", "## transaction of"),
    Stage("mid-round", ": transaction answered"),
    Stage("storm stops", "## storm stopping"),
    Stage("daemon quits", "## storm finished"),
)


@dataclass(frozen=True)
class Case:
    victim: str  # VM or DAEMON
    test: str
    stage: Stage
    signal: str

    @property
    def test_class(self) -> str:
        return self.test.split(":")[-1].split(".")[0]

    @property
    def name(self) -> str:
        return f"{self.test_class} {self.victim.split('-')[-1]} {self.stage.name} SIG{self.signal}"


@dataclass(frozen=True)
class Outcome:
    case: Case
    status: str  # the test's verdict (or ERROR when the job left none)
    reason: str
    injected: str  # what the wrapper did ("" when the stage never came: the test ended first)
    seconds: float
    job: Path

    @property
    def ok(self) -> bool:
        """FAIL naming where it died (its stage: "QEMU crashed at '...'", "QEMU hung while ..."), or
        PASS where the death never came; never ERROR."""
        if self.status == "PASS":
            return not self.injected
        return self.status == "FAIL" and re.search(r"QEMU (crashed|hung) (at '|while )", self.reason) is not None


def matrix(signals: Sequence[str] = SIGNALS, with_daemon: bool = True) -> list[Case]:
    cases = [Case(VM, VM_TEST, stage, sig) for stage in VM_STAGES for sig in signals]
    if with_daemon:
        cases += [Case(DAEMON, DAEMON_TEST, stage, sig) for stage in DAEMON_STAGES for sig in signals]
        cases += [Case(DAEMON, GUEST_ON_DAEMON_TEST, stage, sig) for stage in DAEMON_STAGES[2:5] for sig in signals]
    return cases


def private_cache(directory: Path, users: Path) -> Path:
    """A cache root of this run: the guests of the user's cache ``users`` (linked), nothing else,
    so the schema probes and saved guests of the wrappers (a new QEMU each case) go with the run."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "guests").symlink_to(users / "guests")
    return directory


def wrapper_dir(directory: Path, system: SystemUnderTest) -> Path:
    """``directory`` with the wrapper in front of ``system``'s qemu-system-x86_64 and of its
    qemu-storage-daemon (found beside the wrapper as the daemon of the QEMU under test), and its
    qemu-img."""
    directory.mkdir(parents=True, exist_ok=True)
    daemon = storage_daemon.find_daemon(system.qemu)
    for program, real in ((VM, system.qemu), (DAEMON, daemon)):
        if real is not None:
            path = directory / program
            path.write_text(WRAPPER.format(real=real))
            path.chmod(0o755)
    (directory / "qemu-img").symlink_to(system.qemu_img)
    return directory


def run_case(case: Case, wrappers: Path, results: Path, cache: Path, accel: str = "auto") -> Outcome:
    """One Avocado job of ``case.test`` on the wrappers (a dir of this case's own: its schema is
    probed anew), the death at ``case.stage``; ``cache``: the run's ``private_cache``; ``accel``: ACCEL."""
    started = time.monotonic()
    env = {"ACCEL": accel, "TXNSTORM_BOOT": case.stage.boot, "TXNSTORM_QMP_ANSWER_S": QMP_ANSWER_S,
           "TXNSTORM_CACHE": str(cache), "DEATH_OF": case.victim, "DEATH_SIGNAL": case.signal,
           "DEATH_LOG": case.stage.log, "DEATH_MARKER": case.stage.marker,
           "DEATH_LAUNCH": case.stage.launch or LAUNCHES[case.victim]}  # fmt: skip
    job = runs.run_avocado_job(wrappers / VM, wrappers / "qemu-img", (), results, refs=[case.test], env=env)
    seconds = time.monotonic() - started
    try:
        test = json.loads((job / "results.json").read_text())["tests"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        return Outcome(case, "ERROR", f"no result ({exc})", "", seconds, job)
    logdir = Path(test.get("logdir", ""))
    injected = " ".join(p.read_text().strip() for p in sorted(logdir.rglob("death-injected.txt")))
    status = test.get("status", "?")
    reason = (test.get("fail_reason") or "").splitlines()[0] if status != "PASS" and test.get("fail_reason") else ""
    return Outcome(case, status, reason, injected, seconds, job)


def table(outcomes: Sequence[Outcome]) -> str:
    lines = ["| test | process | stage | signal | verdict | s | reason |", "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        said = o.reason if o.injected else f"{o.reason or 'the test ended before the stage'} (nothing injected)"
        mark = "" if o.ok else " **(wrong)**"
        case = o.case
        lines.append(f"| {case.test_class} | {case.victim} | {case.stage.name} | SIG{case.signal} | {o.status}{mark} | "
                     f"{o.seconds:.0f} | {said[:160]} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="txnstorm deaths", description=__doc__.split("\n\n")[0])
    parser.add_argument("--signal", choices=SIGNALS, action="append", help="only this signal (repeatable)")
    parser.add_argument("--no-daemon", action="store_true", help="only the guest's QEMU")
    parser.add_argument("--stage", action="append", help="only stages whose name contains this (repeatable)")
    parser.add_argument("--test", action="append", help="only tests whose id contains this (repeatable)")
    parser.add_argument("--results", type=Path, default=runs.REPO / "results" / "deaths")
    args = parser.parse_args(argv)
    args.cases = cases = [c for c in matrix(tuple(args.signal or SIGNALS), not args.no_daemon)
             if (not args.stage or any(s in c.stage.name for s in args.stage))
             and (not args.test or any(t in c.test for t in args.test))]  # fmt: skip
    if not cases:
        print("txnstorm deaths: error: --stage and --test name no case of the matrix", file=sys.stderr)
        return 2
    return entry.run(lambda settings: kill_at_every_stage(args, settings), prog="txnstorm deaths")


def kill_at_every_stage(args: argparse.Namespace, settings: Settings) -> int:
    """The matrix's ``args.cases``, with the settings read once: QEMU= (default Debian's), ACCEL, the cache."""
    cases: list[Case] = args.cases
    system = testbed.set_up(settings, needs_guest=False, needs_caps=False).sut
    print(f"deaths: {system.describe()}, {len(cases)} cases", flush=True)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="txnstorm-deaths-") as tmp:
        cache = private_cache(Path(tmp) / "cache", settings.cache_dir)
        for i, case in enumerate(cases):
            wrappers = wrapper_dir(Path(tmp) / f"bin{i}", system)
            outcome = run_case(case, wrappers, args.results / case.name.replace(" ", "-"), cache, settings.accel)
            print(f"deaths: {case.name}: {outcome.status} ({outcome.seconds:.0f} s) {outcome.reason[:120]}",
                  flush=True)  # fmt: skip
            outcomes.append(outcome)
    print(table(outcomes))
    wrong = [o for o in outcomes if not o.ok]
    print(f"deaths: {len(outcomes) - len(wrong)} of {len(outcomes)} cases FAIL naming the stage or PASS before it; "
          f"{len(wrong)} wrong")  # fmt: skip
    return 1 if wrong else 0


if __name__ == "__main__":
    os.chdir(runs.REPO)
    sys.exit(main())
