"""Controls on a loaded host (issue #22): a stamp round whose writer completed fewer than two
writes while the separate commands ran could not be caught, so it is not judged (not a miss);
a control needs at least half its rounds judged, and every judged round caught."""

import pytest

from txnstorm.oracles.stamps import CrossDiskVerdict
from txnstorm.scenario.rounds import ControlNotJudged, Finding, check_control, stamp_finding
from txnstorm.workload.fio import RunningStamps

ORACLE = "cross-disk stamps/guest (frozen bases)"
SAME = CrossDiskVerdict(40, 40, 0, 0)  # a == b: one point in time
APART = CrossDiskVerdict(43, 40, 0, 0)  # the control's captures differ: caught


@pytest.mark.parametrize(
    ("verdict", "progress", "ok", "judged"),
    [
        (SAME, 1, True, False),  # one write: no capture pair could differ
        (SAME, 0, True, False),
        (SAME, 2, True, True),  # two writes could have made them differ: a miss
        (SAME, None, True, True),  # not measured (a transaction round, or the guest did not say)
        (APART, 1, False, True),  # caught is caught
    ],
)  # fmt: skip
def test_a_round_too_slow_to_differ_is_not_judged(verdict, progress, ok, judged):
    finding = stamp_finding(3, ORACLE, verdict, progress)
    assert (finding.ok, finding.judged) == (ok, judged)
    if not judged:
        assert finding.describe().startswith(f"round 3: {ORACLE}: not judged: newest generation on A = 40")
        assert f"the writer completed {progress} stamp writes from the first command to the last" in finding.detail


def detected(findings: list[Finding]) -> str:
    return check_control(findings, "cross-disk stamps/guest")


def caught(n: int) -> Finding:
    return stamp_finding(n, ORACLE, APART, 30)


def too_slow(n: int) -> Finding:
    return stamp_finding(n, ORACLE, SAME, 1)


def test_a_control_passes_with_every_judged_round_caught():
    tally = detected([caught(1), too_slow(2), caught(3), caught(4), too_slow(5)])
    assert tally == "cross-disk stamps/guest caught 3 of 5 rounds (2 not judged)"


def test_a_judged_miss_is_still_a_lost_tooth():
    missed = stamp_finding(2, ORACLE, SAME, 12)
    with pytest.raises(AssertionError, match="NOT detected by 'cross-disk stamps/guest' in 1 of 3 judged rounds"):
        detected([caught(1), missed, caught(3), too_slow(4)])


def test_too_few_judged_rounds_prove_nothing_an_error_not_a_pass():
    with pytest.raises(ControlNotJudged, match="could judge only 2 of 5 rounds"):
        detected([caught(1), too_slow(2), too_slow(3), caught(4), too_slow(5)])


class ProcIo:
    def __init__(self, said: str) -> None:
        self.said = said
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None):
        from txnstorm.vm.ssh import Result

        self.commands.append(command)
        return Result(command, 0, self.said if "/io" in command else "7\n", "")


PROC_IO = "rchar: 1204\nwchar: 5275648\nsyscr: 3\nsyscw: 1288\nread_bytes: 0\nwrite_bytes: 5275648\n"


def test_the_guest_writers_progress_is_its_write_syscalls():
    guest = ProcIo(PROC_IO)
    stamps = RunningStamps(guest, "/dev/vda", "/dev/vdb", 0, 64)  # type: ignore[arg-type]
    assert stamps.completed_writes() == 1288
    assert guest.commands[-1] == "cat /proc/$(cat /tmp/txnstorm/stamps.pid)/io"
    silent = RunningStamps(ProcIo("no such file\n"), "/dev/vda", "/dev/vdb", 0, 64)  # type: ignore[arg-type]
    assert silent.completed_writes() is None
