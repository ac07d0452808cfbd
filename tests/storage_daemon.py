"""Transactions fired at qemu-storage-daemon while NBD clients storm it.

The story: the daemon of the QEMU under test opens three qcow2 disks, all in
one iothread (``io0``), and exports each over NBD (writable, in that
iothread); no guest.  Host NBD clients storm every export (random 4 KiB
writes, 8 in flight each) and the host stamp writer stamps the first and
last disk; every plan that needs no guest fires in turn at the daemon's
QMP.  After the daemon has quit, the captures must be one point in time:
every same-instant pair identical, the NBD stamps consistent.

The control fires the same plans as separate commands: every oracle must
catch it.  A daemon crash or hang is a FAIL of that QEMU; a QEMU with no
daemon beside it CANCELs.
"""

from txnstorm.scenario.avocado_test import StorageDaemonTest
from txnstorm.transactions.plans import PLANS
from txnstorm.vm.topology import Disk, Topology

EVERY_PLAN = list(PLANS.values())
THREE_EXPORTS_ONE_IOTHREAD = Topology(
    "qsd-3-exports-1-iothread", tuple(Disk(f"disk{i}", iothread="io0") for i in range(3))
)


class DaemonNbdStorm(StorageDaemonTest):
    """
    :avocado: enable
    :avocado: tags=quick,qsd,nbd,snapshot,backup,internal-snapshot
    """

    timeout = 300

    def test_one_point_in_time_at_the_daemon(self):
        with self.daemon_storm(THREE_EXPORTS_ONE_IOTHREAD, EVERY_PLAN) as storm:
            for plan in self.rounds(EVERY_PLAN):
                storm.fire(plan)
        findings = self.verify(storm)
        self.assertTrue(any(f.oracle.startswith("cross-disk stamps/nbd") for f in findings), "NBD stamps unchecked")
        self.assert_one_point_in_time(findings)


class DaemonNbdStormControl(StorageDaemonTest):
    """
    :avocado: enable
    :avocado: tags=quick,qsd,nbd,snapshot,backup,internal-snapshot,control
    """

    timeout = 300

    def test_separate_commands_are_caught_by_every_oracle(self):
        with self.daemon_storm(THREE_EXPORTS_ONE_IOTHREAD, EVERY_PLAN) as storm:
            for plan in self.rounds(EVERY_PLAN):
                storm.fire(plan, atomic=False)
        self.assert_every_oracle_caught(self.verify(storm))
