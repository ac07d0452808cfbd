"""Snapshot + backup in one transaction during a guest fio storm.

The story: boot a guest with two virtio-blk dataplane disks on one iothread,
storm both with fio random writes, fire one transaction (drive-backup of
disk0, external snapshots of disk0 and disk1), and verify that the backup
equals the frozen base of disk0: both must hold the same point in time.

The negative control fires the very same actions as separate commands and
must see the oracle report a difference; if it cannot, the oracle is too
weak and the positive test proves nothing.
"""

from pathlib import Path

from txnstorm.avocado_test import TxnstormTest
from txnstorm.scenario import (
    Timeline,
    finish_storm,
    fire_during_storm,
    plan_snapshot_and_backup,
    start_storm,
)
from txnstorm.topology import TWO_DISKS_ONE_IOTHREAD
from txnstorm.txn import fire_separately, fire_transaction

DISKS = ("disk0", "disk1")
STORM_SECONDS = 12
CONTROL_GAP_S = 0.5


class SnapshotBackupStory(TxnstormTest):
    """:avocado: disable"""

    timeout = 300

    def run_story(self, atomic: bool):
        topology = TWO_DISKS_ONE_IOTHREAD
        timeline = Timeline()
        with self.boot(topology) as booted:
            storm = start_storm(booted, DISKS, runtime_s=STORM_SECONDS)
            timeline.mark(booted.vm, "storm started")
            plan = plan_snapshot_and_backup(booted.vm.images, self.scratch, DISKS, backup_disk="disk0")
            if atomic:
                fire = lambda: fire_transaction(booted.vm, plan.actions)  # noqa: E731
            else:
                fire = lambda: fire_separately(booted.vm, plan.actions, CONTROL_GAP_S)  # noqa: E731
            _, overlap = fire_during_storm(booted, storm, DISKS, fire, plan.jobs, timeline)
            result = finish_storm(storm, Path(self.logdir), timeout=STORM_SECONDS + 60)
            timeline.mark(booted.vm, "storm finished", write_ios={n: j.write_ios for n, j in result.jobs.items()})
            timeline.save(Path(self.logdir) / "timeline.json")
            overlap.check(DISKS)
            return self.compare(plan.backup, plan.frozen_base)


class SnapshotBackupTransaction(SnapshotBackupStory):
    """
    :avocado: enable
    :avocado: tags=quick,snapshot,backup,dataplane
    """

    def test_backup_equals_frozen_base(self):
        verdict = self.run_story(atomic=True)
        self.assertTrue(verdict.identical, f"transaction did not capture one point in time: {verdict.describe()}")


class SnapshotBackupSeparateCommands(SnapshotBackupStory):
    """
    :avocado: enable
    :avocado: tags=quick,snapshot,backup,dataplane,control
    """

    def test_oracle_catches_separate_commands(self):
        verdict = self.run_story(atomic=False)
        self.assertFalse(
            verdict.identical,
            "negative control: separate commands during a storm were NOT detected; the oracle is too weak",
        )
