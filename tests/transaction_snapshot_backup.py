"""Snapshot + backup in one transaction during a guest fio storm.

The story: boot a guest with two virtio-blk dataplane disks on one iothread,
storm both with fio random writes, fire one transaction (drive-backup of
disk0, then blockdev-snapshot-sync of disk0 and disk1), and verify that the
backup equals the frozen base of disk0: both must hold the same point in time.

The negative control fires the very same actions as separate commands and
must see the oracle report a difference; if it cannot, the oracle is too
weak and the positive test proves nothing.
"""

from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.story import every_round_fired
from txnstorm.transactions.plans import snapshot_sync_and_drive_backup
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD

PLANS = [snapshot_sync_and_drive_backup]


class SnapshotBackupTransaction(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=nightly,snapshot,backup,dataplane
    """

    timeout = 300

    def test_backup_equals_frozen_base(self):
        rounds = self.rounds(PLANS)
        storm = every_round_fired(self.storm(TWO_DISKS_ONE_IOTHREAD, rounds, stamps=False), rounds)
        self.assert_one_point_in_time(self.verify(storm))


class SnapshotBackupSeparateCommands(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=nightly,snapshot,backup,dataplane,control
    """

    timeout = 300

    def test_oracle_catches_separate_commands(self):
        rounds = self.rounds(PLANS)
        storm = every_round_fired(self.storm(TWO_DISKS_ONE_IOTHREAD, rounds, stamps=False), rounds, atomic=False)
        self.assert_control_detected(self.verify(storm), "drive-backup == frozen base")
