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
        assert f"completed at most {progress} stamp writes while the witnesses were captured" in finding.detail


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


def test_the_window_is_the_commands_that_captured_the_witnesses():
    """Counts right before each command was sent and once it was answered.  The frozen-bases plan
    (backup of disk0, then a snapshot of each disk) captures the witnesses in commands 1 and 2:
    what counts is from right before command 1 was sent to after command 2 was answered, not the
    backup's gap before it (on a loaded host the guest may write only there)."""
    from pathlib import Path
    from types import SimpleNamespace

    from txnstorm.scenario.story import Storm
    from txnstorm.transactions import actions as txn
    from txnstorm.transactions.plans import DiskState, Plan

    bare = object.__new__(Storm)
    bare.witnesses = SimpleNamespace(disks=("disk0", "disk1"))
    bare.states = {d: DiskState(f"{d}-ovl1", Path(f"{d}.qcow2"), "qcow2") for d in ("disk0", "disk1")}
    plan = Plan("snapshot-sync + drive-backup", [
        txn.drive_backup("disk0-ovl1", Path("b.qcow2"), job_id="backup-disk0-r2"),
        {"type": "blockdev-snapshot-sync", "data": {"node-name": "disk0-ovl1", "snapshot-file": "o0"}},
        {"type": "blockdev-snapshot-sync", "data": {"node-name": "disk1-ovl1", "snapshot-file": "o1"}},
    ])  # fmt: skip
    before = [{"guest": 100}, {"guest": 180}, {"guest": 181}]
    after = [{"guest": 101}, {"guest": 180}, {"guest": 250}]
    assert bare.writes_between_witness_captures(plan, before, after) == {"guest": 250 - 180}
    stalled_after = [{"guest": 101}, {"guest": 180}, {"guest": 181}]
    assert bare.writes_between_witness_captures(plan, before, stalled_after) == {"guest": 1}, "not the gap before"
    no_snapshots = Plan("two backups", plan.actions[:1])
    assert bare.writes_between_witness_captures(no_snapshots, before[:1], after[:1]) == {"guest": 1}, "else the round"
    assert bare.writes_between_witness_captures(plan, [{}, {}, {}], [{}, {}, {}]) == {}, "the guest did not say"


def test_separate_commands_keep_their_gap_and_sample_around_each_command():
    from txnstorm.transactions.actions import fire_separately

    class Vm:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def note(self, text: str) -> None:
            pass

        def cmd(self, name: str, **data: object) -> None:
            self.sent.append(name)

    vm, seen = Vm(), []
    actions = [{"type": "a", "data": {}}, {"type": "b", "data": {}}]
    fired = fire_separately(
        vm, actions, 0.05,  # type: ignore[arg-type]
        before_each=lambda i: seen.append(("before", i, list(vm.sent))),
        after_each=lambda i: seen.append(("after", i, list(vm.sent))),
    )  # fmt: skip
    assert seen == [("before", 0, []), ("after", 0, ["a"]), ("before", 1, ["a"]), ("after", 1, ["a", "b"])]
    assert fired.done_at - fired.sent_at >= 0.05


def bitmap_round(gap_writes: int | None):
    """Round 1 of the bitmap control: drive-backup full, then block-dirty-bitmap-add, apart."""
    from types import SimpleNamespace

    from txnstorm.scenario.rounds import RoundRecord
    from txnstorm.transactions.plans import Plan

    plan = Plan("drive-backup full + block-dirty-bitmap-add", [], gap_disk="disk0")
    return RoundRecord(1, plan, SimpleNamespace(), SimpleNamespace(), 0.5, {}, gap_writes)  # type: ignore[arg-type]


FULL_INCREMENTAL = "full + incremental backup == frozen base"


@pytest.mark.parametrize(
    ("gap_writes", "identical", "ok", "judged"),
    [
        (0, True, True, False),  # nothing written between backup and bitmap: nothing could be missing
        (3, True, True, True),  # writes in the gap and still identical: a miss
        (None, True, True, True),  # not measured (a transaction round)
        (0, False, False, True),  # caught is caught
    ],
)  # fmt: skip
def test_a_bitmap_round_with_no_write_in_its_gap_is_not_judged(gap_writes, identical, ok, judged):
    from txnstorm.scenario.rounds import pair_finding

    finding = pair_finding(2, FULL_INCREMENTAL, "a vs b: identical", identical, bitmap_round(gap_writes))
    assert (finding.ok, finding.judged) == (ok, judged)
    if not judged:
        assert "round 1's disk0 completed no write between its separate commands" in finding.detail
    assert pair_finding(2, FULL_INCREMENTAL, "x", identical, None).judged, "a pair with no gap round is judged"


def test_the_bitmap_control_counts_the_gap_disks_writes_after_the_backup_before_the_bitmap():
    """The gap disk is read once the first command (the full backup) was answered and right before
    the last (the bitmap) is sent; the stamp window ignores that count."""
    from pathlib import Path
    from types import SimpleNamespace

    from txnstorm.scenario.story import GAP, Storm
    from txnstorm.transactions.plans import BitmapBase, bitmap_and_full_backup

    ctx = SimpleNamespace(round_no=1, disks={"disk0": SimpleNamespace(node="disk0-ovl1")}, bitmap_base=None,
                          path=lambda stem: Path(f"/s/{stem}-r1.qcow2"))  # fmt: skip
    plan = bitmap_and_full_backup(ctx, "disk0")  # type: ignore[arg-type]
    assert plan.gap_disk == "disk0" and plan.hands_on == BitmapBase("disk0", "disk0-ovl1", "bm-r1",
                                                                      Path("/s/disk0-full-r1.qcow2"), 1)  # fmt: skip
    reads = iter([100, 107])
    bare = object.__new__(Storm)
    bare.witnesses, bare.write_samples = None, []
    bare.writers = SimpleNamespace(write_ops=lambda: {"disk0": next(reads), "disk1": 5}, stamp_writes=dict)
    bare.vm = SimpleNamespace(launched_at=0.0)
    seen = [("after", 0), ("before", 1)]
    counts = {(edge, i): bare.control_counts(plan, i, first=edge == "after") for edge, i in seen}
    assert counts == {("after", 0): {GAP: 100}, ("before", 1): {GAP: 107}}
    assert bare.control_counts(plan, 0, first=False) == {}, "not before the first command"
    assert bare.writes_between_witness_captures(plan, [{}, {GAP: 107}], [{GAP: 100}, {}]) == {}
