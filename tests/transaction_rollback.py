"""All or nothing: a failing action rolls back every other one, mid-storm.

The story: boot a guest with two dataplane disks on one iothread, storm both
with fio, and each round fire a plan's actions (txnstorm/plans.py) plus the
``abort`` action as one transaction.  QEMU must refuse it, and then the
block graph must be as before (no overlay attached, no job, no bitmap, no
internal snapshot, no filter node left), the devices must write again (no
drained section left behind) and fio must end without an I/O error.  As
qemu-iotests 281 does for a failing transaction on an NBD/iothread mirror,
but with a guest writing through dataplane while QEMU rolls back.

The control fires the plans' actions as separate commands: the graph check
must name what changed in every round; and with the guest stopped, the
"devices write again" check must fail.
"""

import random

from txnstorm.avocado_test import CONTROL_GAP_S, TxnstormTest
from txnstorm.errors import DeadlineExceeded
from txnstorm.plans import (
    DiskState,
    RoundContext,
    bitmap_and_full_backup,
    internal_snapshot_and_drive_backup,
    plan_action_types,
    snapshot_and_blockdev_backup,
    snapshot_sync_and_drive_backup,
)
from txnstorm.rollback import AbortedRound, run_aborted_round
from txnstorm.scenario import Timeline, finish_storm, start_storm, wait_until_writing
from txnstorm.topology import TWO_DISKS_ONE_IOTHREAD

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

    def abort_rounds(self, atomic: bool, stop_control: bool = False) -> list[AbortedRound]:
        topology = TWO_DISKS_ONE_IOTHREAD
        disks = [d.name for d in topology.disks]
        rng = random.Random(self.seed)
        rounds = int(self.params.get("rounds", default=len(ROLLBACK_PLANS)))
        timeline, results = Timeline(), []
        with self.boot(topology) as booted:
            vm = booted.vm
            storm = start_storm(booted, disks)
            timeline.mark(vm, "storm started")
            states = {d.name: DiskState(d.node, vm.images[d.name], d.fmt) for d in topology.disks}
            for round_no in range(1, rounds + 1):
                builder = ROLLBACK_PLANS[(round_no - 1) % len(ROLLBACK_PLANS)]
                ctx = RoundContext(round_no, self.scratch, states, self.qemu_img)
                self.require(actions=[*plan_action_types(builder, ctx), "abort"])
                delay = round(rng.uniform(0.05, 0.8), 3)
                result = run_aborted_round(vm, ctx, builder, disks[0], atomic, disks, delay, CONTROL_GAP_S, timeline)
                self.log.info("%s%s", result.describe(), f" (QEMU: {result.answer})" if result.answer else "")
                results.append(result)
            if stop_control:
                vm.cmd("stop")
                with self.assertRaises(DeadlineExceeded, msg="a stopped guest passed the 'write again' check"):
                    wait_until_writing(vm, disks, timeout=3)
                vm.cmd("cont")
                timeline.mark(vm, "control: a stopped guest failed the 'write again' check")
            finish_storm(storm, self.logdir_path, timeout=60, vm=vm)
        timeline.save(self.logdir_path / "timeline.json", vm.write_samples)
        return results

    def test_a_failing_action_rolls_back_every_action(self):
        """Nightly and flaky, not quick: on 7.2.22 and 10.0.13 a device
        sometimes stops completing guest writes after an aborted transaction
        (2 of ~300 aborts on 7.2.22; see README, Known issues).  Not yet a
        known-issue entry, so a stall FAILs this test; ``make ci`` leaves
        flaky tests out until the stall has a verdict of its own.

        :avocado: tags=nightly,flaky
        """
        results = self.abort_rounds(atomic=True)
        for r in results:
            self.assertIn("abort", r.answer.lower(), f"round {r.round_no}: QEMU refused for another reason")
        kept = [r.describe() for r in results if r.leftovers]
        self.assertFalse(kept, "a failed transaction left changes behind:\n" + "\n".join(kept))

    def test_separate_commands_are_caught_by_the_graph_check(self):
        """:avocado: tags=quick,control"""
        results = self.abort_rounds(atomic=False, stop_control=True)
        missed = [r.describe() for r in results if not r.leftovers]
        self.assertFalse(missed, "negative control: the graph check missed separate commands:\n" + "\n".join(missed))
