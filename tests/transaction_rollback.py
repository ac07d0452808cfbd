"""All or nothing: a failing action rolls back every other one, mid-storm.

The story: boot a guest with two dataplane disks on one iothread, storm both
with fio, and each round fire a plan's actions (txnstorm/transactions/plans.py) plus a
failing action as one transaction (``FAILING_WITH``): a ``drive-backup`` that fails in
its own prepare step (a target that does not exist: after it drained its node), a
``blockdev-snapshot`` onto a read-only overlay (refused after the overlay was attached
and put under the device: the graph's own rollback), or the ``abort`` action.  The
last plan changes bitmaps in every way but ``add`` (enable, disable, clear, merge,
remove: each has an abort step of its own).  QEMU must refuse the transaction for
that action's reason, and then the block graph must be as before (no overlay
attached, no job, no bitmap, no internal snapshot, no filter node left, every edge
and its permissions as they were, every bitmap recording, held and counting as it
was), the devices must write again (no drained section left behind) and fio must
end without an I/O error.  As qemu-iotests 281 does for a failing transaction on an
NBD/iothread mirror, but with a guest writing through dataplane while QEMU rolls back.

The control fires the plans' actions as separate commands: the graph check
must name what changed in every round, and the new edges in every round that
snapshots; and with the guest stopped, the "devices write again" check must fail.
"""

from txnstorm.oracles.bitmap_state import bitmap_states
from txnstorm.oracles.rollback import (
    ABORT_ACTION,
    Refusal,
    backup_to_a_missing_target,
    snapshot_onto_a_read_only_overlay,
)
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.story import Storm
from txnstorm.transactions.actions import BITMAP_GRANULARITY
from txnstorm.transactions.plans import (
    RECORDER,
    PlanKind,
    bitmap_and_full_backup,
    bitmaps_changed_every_way,
    internal_snapshot_and_drive_backup,
    snapshot_and_blockdev_backup,
    snapshot_sync_and_drive_backup,
)
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD

FAILING = ["drive-backup", "blockdev-snapshot", "abort"]  # the failing actions the rounds add (``failing``)
READ_ONLY_OVERLAY = "ro-overlay"
SNAPSHOTS = {"blockdev-snapshot", "blockdev-snapshot-sync"}  # external: new edges in the control's graph
RECORDER_NODE = TWO_DISKS_ONE_IOTHREAD.disks[0].node  # the bitmaps plan copies the storm's writes from here
BITMAPS_EVERY_WAY = bitmaps_changed_every_way(RECORDER_NODE)
ROLLBACK_PLANS = [
    snapshot_sync_and_drive_backup,
    bitmap_and_full_backup,
    snapshot_and_blockdev_backup,
    internal_snapshot_and_drive_backup,
    BITMAPS_EVERY_WAY,  # last: the recorder has the storm's writes by then
]
# Each plan's failing action (of the last disk).  The read-only overlay goes with plans that snapshot
# no disk: a plan's own snapshot of the disk refuses the overlay's snapshot as "busy" before its attach.
FAILING_WITH = {
    snapshot_sync_and_drive_backup.name: "drive-backup",
    bitmap_and_full_backup.name: "read-only overlay",
    snapshot_and_blockdev_backup.name: "drive-backup",
    internal_snapshot_and_drive_backup.name: "abort",
    BITMAPS_EVERY_WAY.name: "drive-backup",
}


class TransactionRollback(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=rollback,snapshot,backup,internal-snapshot,dataplane
    """

    timeout = 300

    def test_a_failing_action_rolls_back_every_action(self):
        """A device that stops completing guest writes after the drained
        sections is examined and judged as a stall: the listed one (KI-7) is
        WARN "still reproduces", any other FAILs.

        :avocado: tags=quick
        """
        with self.storm(TWO_DISKS_ONE_IOTHREAD, ROLLBACK_PLANS, stamps=False, also_actions=FAILING) as storm:
            self.add_recorder(storm)
            rounds = self.rounds(ROLLBACK_PLANS)
            results = [storm.fire_with_abort(plan, refusal=self.failing(storm, plan)) for plan in rounds]
        for r in results:
            self.log.info("%s (QEMU: %s)", r.describe(), r.answer)
        for r in results:  # the first round that went wrong says why (a leftover refuses later rounds)
            self.assertTrue(r.refused_as_meant, f"round {r.round_no}: QEMU refused for another reason: {r.answer}")
            self.assertFalse(r.leftovers, f"a failed transaction left changes behind: {r.describe()}")

    def failing(self, storm: Storm, plan: PlanKind) -> Refusal:
        """The failing action ``FAILING_WITH`` pairs with ``plan``, for the last disk.  The read-only
        overlay is added once, before its first round: the graph the round must leave as it was
        holds it.  The bitmaps plan needs the recorder's bits (a copy of none proves nothing)."""
        node = storm.vm.root_node(storm.disks[-1])
        kind = FAILING_WITH[plan.name]
        if plan is BITMAPS_EVERY_WAY and not bitmap_states(storm.vm)[f"{RECORDER_NODE}/{RECORDER}"].count:
            self.error(f"the bitmap {RECORDER} on {RECORDER_NODE} recorded no write before round {storm.round_no + 1}")
        if kind == "abort":
            return ABORT_ACTION
        if kind == "read-only overlay":
            if not (self.scratch / f"{READ_ONLY_OVERLAY}.qcow2").exists():
                image = self.qemu_img.create(self.scratch / f"{READ_ONLY_OVERLAY}.qcow2", "64M")
                storm.vm.cmd("blockdev-add", driver="qcow2", backing=None, **{
                    "node-name": READ_ONLY_OVERLAY, "read-only": True,
                    "file": {"driver": "file", "filename": str(image)}})  # fmt: skip
            return snapshot_onto_a_read_only_overlay(node, READ_ONLY_OVERLAY)
        return backup_to_a_missing_target(node, self.scratch / "no-such-target.qcow2")

    def add_recorder(self, storm: Storm) -> None:
        """The bitmap the bitmaps plan copies the storm's writes from, on the first disk's first node."""
        storm.vm.cmd("block-dirty-bitmap-add", node=RECORDER_NODE, name=RECORDER, granularity=BITMAP_GRANULARITY)

    def test_separate_commands_are_caught_by_the_graph_check(self):
        """:avocado: tags=quick,control"""
        with self.storm(TWO_DISKS_ONE_IOTHREAD, ROLLBACK_PLANS, stamps=False, also_actions=FAILING) as storm:
            self.add_recorder(storm)
            rounds = self.rounds(ROLLBACK_PLANS)
            results = [storm.fire_with_abort(plan, atomic=False) for plan in rounds]
            self.assert_a_stopped_guest_fails_the_write_check(storm)
        missed = [r.describe() for r in results if not r.leftovers]
        self.assertFalse(missed, "negative control: the graph check missed separate commands:\n" + "\n".join(missed))
        snapshots = [r for r, plan in zip(results, rounds, strict=True) if SNAPSHOTS & set(plan.action_types)]
        no_edge = [r.describe() for r in snapshots if not any(x.startswith("edge ") for x in r.leftovers)]
        self.assertTrue(snapshots, "negative control: no round snapshotted a disk")
        self.assertFalse(no_edge, "negative control: the edge check missed a snapshot's edges:\n" + "\n".join(no_edge))
