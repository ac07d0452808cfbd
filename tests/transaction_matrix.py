"""The transaction matrix: every action type on every dataplane topology.

Each test boots one topology, storms every disk with fio and the first and
last disk with the stamp writer, and fires one round per action plan (see
txnstorm/plans.py): external snapshot + drive-backup, blockdev-snapshot +
blockdev-backup, internal snapshot + drive-backup, two backups of one disk.
Every round's captures must be one point in time: same-disk pairs identical,
cross-disk stamps consistent.  The controls fire the same plans as separate
commands and must be caught by each oracle.
"""

from txnstorm.avocado_test import TxnstormTest
from txnstorm.plans import PLANS, plans_for
from txnstorm.topology import TOPOLOGIES, TWO_DISKS_ONE_IOTHREAD


class TransactionMatrix(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=matrix,snapshot,backup,internal-snapshot,dataplane
    """

    timeout = 600

    def one_point_in_time_on(self, topology_name: str) -> None:
        topology = TOPOLOGIES[topology_name]
        names = plans_for({d.fmt for d in topology.disks})
        skipped = sorted(set(PLANS) - set(names))
        if skipped:
            self.log.info("plans not applicable to %s: %s", topology_name, skipped)
        findings = self.storm_rounds(topology, [PLANS[n] for n in names], atomic=True)
        self.assert_one_point_in_time(findings)

    def test_two_disks_one_iothread(self):
        """:avocado: tags=quick"""
        self.one_point_in_time_on("two-disks-one-iothread")

    def test_three_disks_one_iothread(self):
        """:avocado: tags=nightly"""
        self.one_point_in_time_on("three-disks-one-iothread")

    def test_iothread_per_disk(self):
        """:avocado: tags=nightly"""
        self.one_point_in_time_on("iothread-per-disk")

    def test_main_loop_and_iothread(self):
        """:avocado: tags=nightly"""
        self.one_point_in_time_on("main-loop-and-iothread")

    def test_multiqueue(self):
        """:avocado: tags=nightly"""
        self.one_point_in_time_on("multiqueue")

    def test_raw_disks(self):
        """:avocado: tags=nightly"""
        self.one_point_in_time_on("raw-disks")


class TransactionMatrixControls(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=matrix,control,snapshot,backup,internal-snapshot,dataplane
    """

    timeout = 600

    def test_separate_commands_are_caught_by_every_oracle(self):
        """:avocado: tags=quick"""
        findings = self.storm_rounds(TWO_DISKS_ONE_IOTHREAD, list(PLANS.values()), atomic=False)
        for oracle in sorted({f.oracle for f in findings}):
            self.assert_control_detected(findings, oracle)
