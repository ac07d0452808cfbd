"""Reproducers of known QEMU transaction bugs found by the matrix (known-issues.json).

KI-5: one transaction with a drive-backup of a node and a blockdev-backup of
that backup's copy-before-write filter (the only way to back up the same
node twice in one transaction once the first filter sits above it) aborts
QEMU 7.2 in bdrv_do_drained_end.  No storm is needed.  Where QEMU survives,
the two backups must still be the same instant.
"""

from txnstorm.errors import QemuDied
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.rounds import RoundRecord, verify_rounds
from txnstorm.transactions.actions import fire_transaction, wait_jobs
from txnstorm.transactions.plans import DiskState, RoundContext, two_backups
from txnstorm.vm.topology import Disk, Topology

ONE_DISK = Topology("one-dataplane-disk", (Disk("disk0", iothread="io0"),))


class BackupOfBackupFilter(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=known-issue,backup,quick
    """

    timeout = 180
    ISSUE = "KI-5"

    def test_two_backups_of_one_node(self):
        crash, record = None, None
        with self.boot(ONE_DISK) as booted:
            vm = booted.vm
            states = {"disk0": DiskState("disk0", vm.images["disk0"], "qcow2")}
            plan = two_backups(RoundContext(1, self.scratch, states), "disk0")
            plan.prepare_images(self.qemu_img)
            for command, args in plan.setup:
                vm.cmd(command, **args)
            try:
                fired = fire_transaction(vm, plan.actions)
                wait_jobs(vm, plan.jobs)
                record = RoundRecord(1, plan, fired, None, 0.0)  # type: ignore[arg-type]
            except QemuDied as died:
                crash = str(died)
            crash = crash or vm.wait_for_death()
        crash = crash or vm.died_at_shutdown()
        if crash is None and record is not None:
            self.assert_one_point_in_time(verify_rounds(self.qemu_img, [record], self.scratch, None))
        self.report(crash, tries=1)
