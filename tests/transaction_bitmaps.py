"""The bitmap actions beyond ``add`` in transactions: enable, clear, merge, disable.

The story: boot a guest with two virtio-blk dataplane disks on one iothread and
storm both with fio random writes.  Before the first round, while the storm
writes, each disk gets a dirty bitmap: the first disabled, the second enabled.
Round 1 fires one transaction: a full backup of each disk, the second disk's
bitmap cleared, the first disk's bitmap enabled.  Round 2 fires another: a
snapshot of every disk, the enabled bitmap merged into a new disabled one and
then disabled, and an incremental backup of each frozen disk (the first by the
merged bitmap, the second by the cleared one, each onto its full backup of
round 1).  Full + incremental must equal each disk's frozen base: the bitmaps
started at round 1's point in time and held every write up to round 2's.  A
transaction that leaves the bitmap disabled (its enable lost) or the merged one
empty loses the storm's writes, and the oracle sees it (docs/teeth.md: the
mutant ``blockdev.c:2188``).

The negative control fires round 1 as separate commands (round 2 stays one
transaction): the first disk's writes between its full backup and the enable
are in neither, so full + incremental must differ from the frozen base in every
round where that disk wrote between the commands.
"""

from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.story import every_round_fired
from txnstorm.transactions.plans import (
    bitmaps_enabled_and_cleared_at_full_backups,
    bitmaps_merged_disabled_and_backed_up,
)
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD

PLANS = [bitmaps_enabled_and_cleared_at_full_backups, bitmaps_merged_disabled_and_backed_up]
ENABLED = "full + incremental (merged from the enabled bitmap)"


class BitmapLifecycleTransaction(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=bitmap,bitmap-lifecycle,backup,snapshot,dataplane
    """

    timeout = 300

    def test_bitmaps_enabled_cleared_and_merged_in_transactions_miss_no_write(self):
        """One lifecycle (two rounds): every bitmap action is deterministic once fired, so a lost
        enable or merge fails its first check.

        :avocado: tags=quick
        """
        rounds = self.rounds(PLANS, default=2)
        storm = every_round_fired(self.storm(TWO_DISKS_ONE_IOTHREAD, rounds), rounds)
        self.assert_one_point_in_time(self.verify(storm))


class BitmapLifecycleSeparateCommands(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=bitmap,bitmap-lifecycle,backup,snapshot,dataplane,control
    """

    timeout = 300

    def test_bitmap_enabled_apart_from_its_full_backup_is_caught(self):
        """Round 1 as separate commands, two lifecycles.  The cleared bitmap's check is left to
        the positive test: its disk's writes between the clear and the enable are in no gap.

        :avocado: tags=quick
        """
        rounds = self.rounds(PLANS, default=4)
        with self.storm(TWO_DISKS_ONE_IOTHREAD, rounds) as storm:
            for plan in rounds:
                storm.fire(plan, atomic=plan is not bitmaps_enabled_and_cleared_at_full_backups)
        findings = self.verify(storm)
        self.assert_control_detected(findings, ENABLED)
        self.assert_one_point_in_time([f for f in findings if not f.oracle.startswith("full + incremental")])
