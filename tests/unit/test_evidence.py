"""What a failed test keeps as evidence (Storm.drop_captures_of_agreeing_rounds)."""

from types import SimpleNamespace

from test_ahead import first_context

from txnstorm.scenario.ahead import RoundsAhead
from txnstorm.scenario.rounds import RoundRecord
from txnstorm.scenario.story import Storm
from txnstorm.transactions.plans import (
    bitmap_and_full_backup,
    incremental_backup_and_snapshot,
    snapshot_and_blockdev_backup,
)


def test_a_failed_test_keeps_the_violated_rounds_captures_and_the_chains_they_need(tmp_path, qemu_img):
    """Round 2 violated: its backup, and every overlay (the chain of its frozen base) stay; the
    agreeing rounds' backup targets go, but not the full backup an incremental target backs onto."""
    ctx = first_context(tmp_path, qemu_img)
    kinds = [snapshot_and_blockdev_backup, snapshot_and_blockdev_backup, bitmap_and_full_backup,
             incremental_backup_and_snapshot]  # fmt: skip
    ahead = RoundsAhead.prepare(kinds, ctx, "disk0", qemu_img)
    (tmp_path / "disk0-full-r3.qcow2").write_bytes(b"full")  # what round 3's drive-backup wrote
    storm = Storm.__new__(Storm)
    storm.scratch, storm.states = tmp_path, dict(ctx.disks)
    storm.records = [
        RoundRecord(e.built_from.round_no, e.plan, SimpleNamespace(), SimpleNamespace(), 0.1)  # type: ignore[arg-type]
        for e in ahead.planned
    ]
    removed, freed = storm.drop_captures_of_agreeing_rounds({2})
    left = sorted(p.name for p in tmp_path.glob("*.qcow2"))
    assert "disk0-bdbackup-r1.qcow2" not in left and "disk0-incremental-r4.qcow2" not in left
    kept = {"disk0-bdbackup-r2.qcow2", "disk0-full-r3.qcow2", "disk0-overlay-r1.qcow2", "disk1-overlay-r2.qcow2"}
    assert kept <= set(left)
    assert removed == 2 and freed > 0
