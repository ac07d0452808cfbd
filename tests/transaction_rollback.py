"""All or nothing: a failing action rolls back every other one, mid-storm.

The story: boot a guest with two dataplane disks on one iothread, storm both
with fio, and each round fire a plan's actions (txnstorm/transactions/plans.py) plus a
failing action as one transaction: in turn a ``drive-backup`` that fails in its own
prepare step (a target that does not exist: after it drained its node) and the ``abort``
action.  QEMU must refuse it for that action's reason, and then the
block graph must be as before (no overlay attached, no job, no bitmap, no
internal snapshot, no filter node left), the devices must write again (no
drained section left behind) and fio must end without an I/O error.  As
qemu-iotests 281 does for a failing transaction on an NBD/iothread mirror,
but with a guest writing through dataplane while QEMU rolls back.

The control fires the plans' actions as separate commands: the graph check
must name what changed in every round; and with the guest stopped, the
"devices write again" check must fail.
"""

from txnstorm.oracles.rollback import ABORT_ACTION, Refusal, backup_to_a_missing_target
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.story import Storm
from txnstorm.transactions.plans import (
    bitmap_and_full_backup,
    internal_snapshot_and_drive_backup,
    snapshot_and_blockdev_backup,
    snapshot_sync_and_drive_backup,
)
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD

FAILING = ["drive-backup", "abort"]  # the failing actions the rounds add, in turn (``failing``)
ROLLBACK_PLANS = [
    snapshot_sync_and_drive_backup,
    bitmap_and_full_backup,
    snapshot_and_blockdev_backup,
    internal_snapshot_and_drive_backup,
]


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
            rounds = self.rounds(ROLLBACK_PLANS)
            results = [storm.fire_with_abort(plan, refusal=self.failing(storm, n)) for n, plan in enumerate(rounds)]
        for r in results:
            self.log.info("%s (QEMU: %s)", r.describe(), r.answer)
            self.assertTrue(r.refused_as_meant, f"round {r.round_no}: QEMU refused for another reason: {r.answer}")
        kept = [r.describe() for r in results if r.leftovers]
        self.assertFalse(kept, "a failed transaction left changes behind:\n" + "\n".join(kept))

    def failing(self, storm: Storm, n: int) -> Refusal:
        """Round ``n``'s failing action: a drive-backup of the last disk to a missing target
        (even rounds, the first included), the ``abort`` action (odd ones)."""
        if n % 2:
            return ABORT_ACTION
        return backup_to_a_missing_target(storm.vm.root_node(storm.disks[-1]), self.scratch / "no-such-target.qcow2")

    def test_separate_commands_are_caught_by_the_graph_check(self):
        """:avocado: tags=quick,control"""
        with self.storm(TWO_DISKS_ONE_IOTHREAD, ROLLBACK_PLANS, stamps=False, also_actions=FAILING) as storm:
            rounds = self.rounds(ROLLBACK_PLANS)
            results = [storm.fire_with_abort(plan, atomic=False) for plan in rounds]
            self.assert_a_stopped_guest_fails_the_write_check(storm)
        missed = [r.describe() for r in results if not r.leftovers]
        self.assertFalse(missed, "negative control: the graph check missed separate commands:\n" + "\n".join(missed))
