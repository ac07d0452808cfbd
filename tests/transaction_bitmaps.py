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
mutant ``blockdev.c:2188``).  Once round 2's jobs ended, the bitmaps themselves
are read (``oracles.bitmap_state``): the one disabled there records nothing, and
the cleared one counts what its twin, added beside the clear, counts.  A lost
disable or clear only leaves more bits, which no image oracle sees.

The negative control fires round 1 as separate commands (round 2 stays one
transaction): the first disk's writes between its full backup and the enable
are in neither, so full + incremental must differ from the frozen base in every
round where that disk wrote between the commands; and the second disk's writes
between the clear and the twin's add are in the cleared bitmap only, so the twin
check must fail in at least one of its lifecycles.
"""

from txnstorm.oracles import bitmap_state
from txnstorm.oracles.bitmap_state import TWIN, StateCheck
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.story import Storm
from txnstorm.transactions.plans import (
    bitmaps_enabled_and_cleared_at_full_backups,
    bitmaps_merged_disabled_and_backed_up,
)
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD

PLANS = [bitmaps_enabled_and_cleared_at_full_backups, bitmaps_merged_disabled_and_backed_up]
ENABLED = "full + incremental (merged from the enabled bitmap)"


def fire_reading_the_bitmaps(storm: Storm, rounds: list, first_atomic: bool = True) -> list[StateCheck]:
    """Every round fired (the lifecycle's first as separate commands unless ``first_atomic``);
    after each second round, once its jobs ended, the bitmaps' own state checked."""
    checks: list[StateCheck] = []
    base = None
    for plan in rounds:
        record = storm.fire(plan, atomic=first_atomic or plan is not bitmaps_enabled_and_cleared_at_full_backups)
        if plan is bitmaps_enabled_and_cleared_at_full_backups:
            base = record.plan.hands_on
        elif base is not None:
            found = bitmap_state.lifecycle_checks(bitmap_state.bitmap_states(storm.vm), base)
            for check in found:
                storm.mark(f"round {record.round_no}: {check.describe()}")
            checks += found
    return checks


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
        with self.storm(TWO_DISKS_ONE_IOTHREAD, rounds) as storm:
            checks = fire_reading_the_bitmaps(storm, rounds)
        self.assert_one_point_in_time(self.verify(storm))
        wrong = [c.describe() for c in checks if not c.ok]
        self.assertFalse(wrong, "the bitmaps are not as the transactions left them:\n" + "\n".join(wrong))


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
            checks = fire_reading_the_bitmaps(storm, rounds, first_atomic=False)
        findings = self.verify(storm)
        self.assert_control_detected(findings, ENABLED)
        self.assert_one_point_in_time([f for f in findings if not f.oracle.startswith("full + incremental")])
        twins = [c for c in checks if c.oracle == TWIN]
        self.log.info("control: the twin check caught %d of %d lifecycles", sum(not c.ok for c in twins), len(twins))
        self.assertTrue(any(not c.ok for c in twins), "negative control: the twin check agreed in every lifecycle "
                        "though the clear and the twin's add were separate commands:\n"
                        + "\n".join(c.describe() for c in twins))  # fmt: skip
        wrong = [c.describe() for c in checks if c.oracle != TWIN and not c.ok]
        self.assertFalse(wrong, "the bitmaps are not as the (atomic) second rounds left them:\n" + "\n".join(wrong))
