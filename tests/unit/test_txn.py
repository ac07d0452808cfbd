from pathlib import Path

import pytest

from txnstorm.transactions.actions import drive_backup, job_ids, snapshot_sync
from txnstorm.transactions.plans import PLANS, DiskState, RoundContext, snapshot_sync_and_drive_backup, two_backups


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


def ctx_for(tmp_path, qemu_img, disks=("disk0", "disk1"), witnesses=None):
    states = {d: DiskState(d, qemu_img.create(tmp_path / f"{d}.qcow2", "4M"), "qcow2") for d in disks}
    return RoundContext(1, tmp_path, states, witnesses)


def test_backup_is_listed_before_the_snapshot_it_is_compared_with(tmp_path, qemu_img):
    ctx = ctx_for(tmp_path, qemu_img)
    plan = snapshot_sync_and_drive_backup(ctx, "disk0")
    assert [a["type"] for a in plan.actions] == ["drive-backup", "blockdev-snapshot-sync", "blockdev-snapshot-sync"]
    assert [a["data"]["node-name"] for a in plan.actions[1:]] == ["disk0", "disk1"]
    (pair,) = plan.pairs
    assert pair.b.path == tmp_path / "disk0.qcow2"
    assert plan.jobs == ["backup-disk0-r1"]
    assert {d: s.node for d, s in plan.new_tops.items()} == {"disk0": "disk0-ovl1", "disk1": "disk1-ovl1"}


def test_stamp_witnesses_are_frozen_first_and_last(tmp_path, qemu_img):
    ctx = ctx_for(tmp_path, qemu_img, ("disk0", "disk1", "disk2"), witnesses=("disk0", "disk1"))
    plan = snapshot_sync_and_drive_backup(ctx, "disk2")
    frozen = [a["data"]["node-name"] for a in plan.actions if a["type"] == "blockdev-snapshot-sync"]
    assert frozen == ["disk0", "disk2", "disk1"]
    (stamps,) = plan.stamp_pairs
    assert (stamps.a.path.name, stamps.b.path.name) == ("disk0.qcow2", "disk1.qcow2")


def make_targets_qemu_would_create(plan, qemu_img):
    plan.prepare_images(qemu_img)  # what the round engine creates
    for action in plan.actions:
        if action["type"] == "drive-backup":
            qemu_img.create(Path(action["data"]["target"]), "4M")
        if action["type"] == "blockdev-snapshot-sync":
            qemu_img.create(Path(action["data"]["snapshot-file"]), "4M")


def test_the_rotation_gives_every_plan_an_oracle_and_unique_node_names(tmp_path, qemu_img):
    """Each plan has a same-instant pair, or hands its capture to the next one."""
    ctx = ctx_for(tmp_path, qemu_img, witnesses=("disk0", "disk1"))
    for round_no, name in enumerate(PLANS, start=1):
        ctx.round_no = round_no
        plan = PLANS[name](ctx, "disk0")
        assert plan.pairs or plan.hands_on, f"{name} has no oracle and hands nothing on"
        assert not (plan.hands_on and PLANS[name].uses_bitmap_base), "a plan hands on or uses up, not both"
        make_targets_qemu_would_create(plan, qemu_img)
        if plan.hands_on:
            ctx.bitmap_base = plan.hands_on
        elif PLANS[name].uses_bitmap_base:
            ctx.bitmap_base = None
        added = [args["node-name"] for cmd, args in plan.setup if cmd == "blockdev-add"]
        assert len(added) == len(set(added))
        for cmd, args in plan.setup:
            assert Path(args["file"]["filename"]).exists(), f"{cmd} of a node whose image was not created"
        ctx.disks.update(plan.new_tops)
    assert ctx.bitmap_base is None, "a plan's hand-over was never picked up"


def test_incremental_backup_lands_on_the_full_backup_and_precedes_the_snapshots(tmp_path, qemu_img):
    ctx = ctx_for(tmp_path, qemu_img)
    first = PLANS["bitmap+full-backup"](ctx, "disk0")
    assert [a["type"] for a in first.actions] == ["drive-backup", "block-dirty-bitmap-add"]
    # one 4 KiB storm write per bit: a later write elsewhere in a 64 KiB cluster must not re-copy
    # (and so hide) a write the bitmap missed (the bitmap control under load, issue #22)
    assert first.actions[1]["data"]["granularity"] == 4096
    make_targets_qemu_would_create(first, qemu_img)
    ctx.round_no, ctx.bitmap_base = 2, first.hands_on
    second = PLANS["incremental-backup+snapshot-sync"](ctx, "disk0")
    second.prepare_images(qemu_img)
    backup = second.actions[0]
    assert backup["type"] == "blockdev-backup" and backup["data"]["sync"] == "incremental"
    assert backup["data"]["bitmap"] == first.actions[1]["data"]["name"]
    (pair,) = second.pairs
    assert qemu_img.info(pair.a.path)["backing-filename"] == first.actions[0]["data"]["target"]


def test_blockdev_snapshot_overlays_name_their_backing_and_are_added_without_it(tmp_path, qemu_img):
    ctx = ctx_for(tmp_path, qemu_img)
    plan = PLANS["blockdev-snapshot+blockdev-backup"](ctx, "disk0")
    assert not any(image.path.exists() for image in plan.images), "a builder declares images, it creates none"
    plan.prepare_images(qemu_img)
    overlays = [args for cmd, args in plan.setup if args["node-name"].endswith("-ovl1")]
    assert all(args["backing"] is None for args in overlays)
    info = qemu_img.info(Path(overlays[0]["file"]["filename"]))
    assert info["backing-filename"] == str(tmp_path / "disk0.qcow2")


def test_internal_snapshot_plan_reads_the_snapshot_back(tmp_path, qemu_img):
    ctx = ctx_for(tmp_path, qemu_img, witnesses=("disk0", "disk1"))
    plan = PLANS["internal-snapshot+drive-backup"](ctx, "disk0")
    (pair,) = plan.pairs
    assert pair.b.snapshot == "txn-r1"
    types = [a["type"] for a in plan.actions]
    # the internal snapshot of disk0 first (it stays the active node), then its backup
    assert types == ["blockdev-snapshot-internal-sync", "drive-backup", "blockdev-snapshot-internal-sync"]


def test_second_backup_of_a_node_reads_through_the_first_ones_filter(tmp_path, qemu_img):
    ctx = ctx_for(tmp_path, qemu_img)
    plan = two_backups(ctx, "disk0")
    first, second = plan.actions
    assert second["data"]["device"] == first["data"]["filter-node-name"]


def test_declared_action_types_match_what_each_plan_fires(tmp_path, qemu_img):
    from txnstorm.transactions.plans import bitmap_and_full_backup

    ctx = ctx_for(tmp_path, qemu_img)
    for kind in [*PLANS.values(), two_backups]:
        if kind.uses_bitmap_base:
            base = bitmap_and_full_backup(ctx, "disk0")
            make_targets_qemu_would_create(base, qemu_img)
            ctx.bitmap_base = base.hands_on
        plan = kind(ctx, "disk0")
        make_targets_qemu_would_create(plan, qemu_img)
        assert sorted({a["type"] for a in plan.actions}) == sorted(kind.action_types), kind.name
        ctx.round_no += 1


def test_a_plan_kind_is_one_registry_entry():
    from txnstorm.transactions.plans import action_types, internal_snapshot_and_drive_backup, plans_for

    assert all(name == kind.name for name, kind in PLANS.items())
    assert plans_for({"qcow2"}) == list(PLANS)
    assert internal_snapshot_and_drive_backup.name not in plans_for({"qcow2", "raw"}), "internal snapshots: qcow2"
    assert action_types([two_backups]) == ["blockdev-backup", "drive-backup"]
    assert repr(two_backups) == "PlanKind(drive-backup+blockdev-backup)"


def test_events_are_matched_member_by_member():
    from txnstorm.vm.qmp import matches

    event = {"event": "BLOCK_JOB_COMPLETED", "data": {"device": "backup-disk0-r1", "len": 4, "offset": 4}}
    assert matches(event, {"data": {"device": "backup-disk0-r1"}})
    assert matches(event, {})
    assert not matches(event, {"data": {"device": "backup-disk1-r1"}})
    assert not matches(event, {"data": {"error": "x"}}), "a member the event lacks is no match"
    assert not matches({"data": "flat"}, {"data": {"device": "x"}})


def test_the_race_plan_backs_up_every_disk_before_any_snapshot(tmp_path, qemu_img):
    from txnstorm.transactions.plans import every_disk_backup_and_snapshot

    ctx = ctx_for(tmp_path, qemu_img, ("disk0", "disk1", "disk2"), witnesses=("disk0", "disk1"))
    plan = every_disk_backup_and_snapshot(ctx, "disk0")
    kinds = [(a["type"], a["data"].get("device") or a["data"]["node"]) for a in plan.actions]
    assert kinds == [
        ("blockdev-backup", "disk0"), ("blockdev-backup", "disk1"), ("blockdev-backup", "disk2"),
        ("blockdev-snapshot", "disk0"), ("blockdev-snapshot", "disk2"), ("blockdev-snapshot", "disk1"),
    ]  # fmt: skip
    assert [(p.a.path.name, p.b.path.name) for p in plan.pairs] == [
        (f"{d}-bdbackup-r1.qcow2", f"{d}.qcow2") for d in ("disk0", "disk1", "disk2")
    ]
    assert len(plan.jobs) == 3 and len(plan.stamp_pairs) == 1


def test_the_bitmap_lifecycle_enables_last_and_backs_up_by_the_merged_and_the_cleared_bitmaps(tmp_path, qemu_img):
    """Round 1 adds its bitmaps before firing (one disabled) and enables last (the control's gap);
    round 2 merges, disables, then backs up each disk onto its own full backup."""
    from txnstorm.scenario.ahead import RoundsAhead
    from txnstorm.transactions.plans import (
        bitmaps_enabled_and_cleared_at_full_backups as start,
    )
    from txnstorm.transactions.plans import (
        bitmaps_merged_disabled_and_backed_up as end,
    )

    ctx = ctx_for(tmp_path, qemu_img)
    first = start(ctx, "disk0")
    assert [(cmd, args.get("disabled", False)) for cmd, args in first.setup] == [
        ("block-dirty-bitmap-add", True), ("block-dirty-bitmap-add", False)]  # fmt: skip
    assert [a["type"] for a in first.actions] == ["drive-backup", "drive-backup", "block-dirty-bitmap-clear",
                                                  "block-dirty-bitmap-add", "block-dirty-bitmap-enable"]  # fmt: skip
    # the clear's twin, in the same drained section (after both backups drained their nodes)
    assert first.actions[3]["data"] == {"node": "disk1", "name": "bm-cleared-r1-twin", "granularity": 4096}
    assert first.actions[-1]["data"] == {"node": "disk0", "name": "bm-enabled-r1"} and first.gap_disk == "disk0"
    assert first.jobs == ["full-disk0-r1", "full-disk1-r1"]
    make_targets_qemu_would_create(first, qemu_img)
    ctx.round_no, ctx.bitmap_base = 2, first.hands_on
    second = end(ctx, "disk0")
    second.prepare_images(qemu_img)
    # the snapshots first: a bitmap action drains nothing, so every one runs while its node is drained
    assert [a["type"] for a in second.actions] == ["blockdev-snapshot-sync", "blockdev-snapshot-sync",
                                                   "block-dirty-bitmap-merge", "block-dirty-bitmap-disable",
                                                   "block-dirty-bitmap-remove", "blockdev-backup",
                                                   "blockdev-backup"]  # fmt: skip
    assert second.actions[4]["data"] == {"node": "disk0", "name": "bm-enabled-r1-dropped"}
    assert second.actions[2]["data"] == {"node": "disk0", "target": "bm-merged-r2", "bitmaps": ["bm-enabled-r1"]}
    # sync "bitmap" with bitmap-mode "never" (QEMU refuses "never" with sync "incremental")
    assert [(a["data"]["device"], a["data"]["bitmap"], a["data"]["sync"], a["data"]["bitmap-mode"])
            for a in second.actions[5:]] == [("disk0", "bm-merged-r2", "bitmap", "never"),
                                             ("disk1", "bm-cleared-r1", "bitmap", "never")]  # fmt: skip
    assert [p.label for p in second.pairs] == ["full + incremental (merged from the enabled bitmap) == frozen base",
                                               "full + incremental (cleared bitmap) == frozen base"]  # fmt: skip
    for pair, disk in zip(second.pairs, ("disk0", "disk1"), strict=True):
        assert qemu_img.info(pair.a.path)["backing-filename"] == str(tmp_path / f"{disk}-full-r1.qcow2")
        assert pair.gap_round == 1
    assert set(second.new_tops) == {"disk0", "disk1"}
    # prepared before the storm: both incremental targets have their size from the disks'
    (tmp_path / "a").mkdir()
    ahead = RoundsAhead.prepare([start, end], ctx_for(tmp_path / "a", qemu_img), "disk0", qemu_img)
    assert [len(p.deferred) for p in ahead.planned] == [0, 0]
    with pytest.raises(ValueError, match="two disks"):
        start(ctx_for(tmp_path / "a", qemu_img, ("disk0",)), "disk0")
