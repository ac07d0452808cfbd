"""Rounds prepared before the storm (scenario/ahead.py): the same plans as built round by round, the
images there before the storm starts, and nothing prepared used from another state."""

import dataclasses
from pathlib import Path

from test_txn import ctx_for

from txnstorm.scenario.ahead import RoundsAhead, RoundState, bitmap_base_after
from txnstorm.transactions.plans import (
    PLANS,
    RoundContext,
    bitmap_and_full_backup,
    incremental_backup_and_snapshot,
    snapshot_and_blockdev_backup,
)

ROTATION = list(PLANS.values()) * 2


def first_context(tmp_path: Path, qemu_img) -> RoundContext:
    """Two 4 MiB disks, the stamp witnesses, before round 1 (test_txn's context, one round earlier)."""
    return dataclasses.replace(ctx_for(tmp_path, qemu_img, witnesses=("disk0", "disk1")), round_no=0)


def built_round_by_round(ctx: RoundContext, kinds) -> list:
    """What the engine builds without preparation: each plan from the state the last one left."""
    disks, base, plans = dict(ctx.disks), None, []
    for number, kind in enumerate(kinds, start=1):
        plan = kind(RoundContext(number, ctx.scratch, dict(disks), ctx.witnesses, base), "disk0")
        plans.append(plan)
        disks.update(plan.new_tops)
        base = bitmap_base_after(kind, plan, base)
    return plans


def test_prepared_plans_are_the_plans_built_round_by_round(tmp_path, qemu_img):
    ctx = first_context(tmp_path, qemu_img)
    ahead = RoundsAhead.prepare(ROTATION, ctx, "disk0", qemu_img)
    expected = built_round_by_round(ctx, ROTATION)
    assert [(e.plan.name, e.plan.actions, e.plan.pairs, e.plan.setup) for e in ahead.planned] == [
        (p.name, p.actions, p.pairs, p.setup) for p in expected
    ]


def test_every_image_exists_before_the_storm_even_onto_captures_still_to_come(tmp_path, qemu_img):
    ctx = first_context(tmp_path, qemu_img)
    ahead = RoundsAhead.prepare(ROTATION, ctx, "disk0", qemu_img)
    images = [image for entry in ahead.planned for image in entry.plan.images]
    assert images and all(image.path.exists() for image in images)
    assert not [image for entry in ahead.planned for image in entry.deferred]
    # Round 3's incremental target backs onto the full backup round 2's drive-backup will write,
    # round 4's overlays onto the overlays round 3's blockdev-snapshot-sync will create.
    for image, backing in (("disk0-incremental-r3", "disk0-full-r2"), ("disk1-overlay-r4", "disk1-overlay-r3")):
        info = qemu_img.info(tmp_path / f"{image}.qcow2")
        assert (info["backing-filename"], info["virtual-size"]) == (str(tmp_path / f"{backing}.qcow2"), 4 << 20)
    assert not (tmp_path / "disk0-full-r2.qcow2").exists()
    assert qemu_img.virtual_size(tmp_path / "disk0-bdbackup-r4.qcow2") == 4 << 20


def test_a_round_takes_its_plan_only_from_the_state_it_was_built_from(tmp_path, qemu_img):
    ctx = first_context(tmp_path, qemu_img)
    kinds = [snapshot_and_blockdev_backup] * 3
    ahead = RoundsAhead.prepare(kinds, ctx, "disk0", qemu_img)
    state = RoundState.of(1, ctx.disks, None)
    first = ahead.take(snapshot_and_blockdev_backup, "disk0", state)
    assert first is not None and first.plan.name == "blockdev-snapshot + blockdev-backup"
    # Round 2 fired as if round 1 had changed nothing (an aborted round): nothing prepared holds.
    assert ahead.take(snapshot_and_blockdev_backup, "disk0", RoundState.of(2, ctx.disks, None)) is None
    assert len(ahead) == 0


def test_another_kind_than_declared_drops_what_was_prepared(tmp_path, qemu_img):
    ctx = first_context(tmp_path, qemu_img)
    ahead = RoundsAhead.prepare([bitmap_and_full_backup, incremental_backup_and_snapshot], ctx, "disk0", qemu_img)
    assert ahead.take(snapshot_and_blockdev_backup, "disk0", RoundState.of(1, ctx.disks, None)) is None
    assert len(ahead) == 0


def test_nothing_declared_prepares_nothing(tmp_path, qemu_img):
    ahead = RoundsAhead.prepare([], first_context(tmp_path, qemu_img), "disk0", qemu_img)
    assert ahead.take(snapshot_and_blockdev_backup, "disk0", RoundState.of(1, {}, None)) is None

