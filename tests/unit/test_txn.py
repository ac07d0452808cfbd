from pathlib import Path

from txnstorm.scenario import plan_snapshot_and_backup
from txnstorm.txn import drive_backup, job_ids, snapshot_sync


def test_snapshot_sync_action():
    action = snapshot_sync("disk0", Path("/s/o.qcow2"), "disk0-o")
    assert action == {
        "type": "blockdev-snapshot-sync",
        "data": {
            "node-name": "disk0",
            "snapshot-file": "/s/o.qcow2",
            "snapshot-node-name": "disk0-o",
            "format": "qcow2",
            "mode": "absolute-paths",
        },
    }


def test_drive_backup_action_and_job_ids():
    backup = drive_backup("disk0", Path("/s/b.qcow2"), job_id="b0")
    assert backup["type"] == "drive-backup"
    assert backup["data"]["sync"] == "full"
    assert backup["data"]["device"] == "disk0"
    assert job_ids([snapshot_sync("d", Path("x"), "n"), backup]) == ["b0"]


def test_plan_lists_backup_before_the_snapshot_it_is_compared_with():
    images = {"disk0": Path("/s/disk0.qcow2"), "disk1": Path("/s/disk1.qcow2")}
    plan = plan_snapshot_and_backup(images, Path("/s"), ["disk0", "disk1"], "disk0")
    types = [a["type"] for a in plan.actions]
    assert types == ["drive-backup", "blockdev-snapshot-sync", "blockdev-snapshot-sync"]
    assert plan.frozen_base == images["disk0"]
    assert plan.jobs == ("backup-disk0-1",)
    snapshotted = [a["data"]["node-name"] for a in plan.actions[1:]]
    assert snapshotted == ["disk0", "disk1"]
