"""The transaction matrix: every action type on every dataplane topology.

Each test boots one topology, storms every disk with fio and the first and
last disk with the stamp writer, and fires one round per action plan (see
txnstorm/plans.py): external snapshot + drive-backup, full backup + dirty
bitmap then incremental backup + snapshot, blockdev-snapshot +
blockdev-backup, internal snapshot + drive-backup.  Every round's captures
must be one point in time: same-disk pairs identical, cross-disk stamps
consistent.  The controls fire the same plans as separate commands and must
be caught by each oracle.
"""

from txnstorm.avocado_test import TxnstormTest
from txnstorm.plans import PLANS, bitmap_and_full_backup, incremental_backup_and_snapshot, plans_for
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

    def test_bitmap_added_apart_from_its_full_backup_is_caught(self):
        """The full backup and its bitmap as two commands, the incremental
        round still one transaction: writes between the two are in neither,
        so full + incremental must differ from the frozen base.  (The control
        above splits both rounds, so it cannot say which one was caught.)

        :avocado: tags=quick,bitmap
        """
        findings = self.storm_rounds(
            TWO_DISKS_ONE_IOTHREAD,
            [bitmap_and_full_backup, incremental_backup_and_snapshot],
            atomic=lambda plan: plan is not bitmap_and_full_backup,
            rounds=4,
        )
        self.assert_control_detected(findings, "full + incremental")
        self.assert_one_point_in_time([f for f in findings if not f.oracle.startswith("full + incremental")])
