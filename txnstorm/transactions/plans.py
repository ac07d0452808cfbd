"""What one round captures, and which captures must agree.

A plan is built per round from the disks' current state (the node and image
each device writes to now).  It lists the actions to fire (in one
transaction, or separately for a negative control), the jobs to wait for,
the images and nodes that must exist before firing (declared: the round
engine creates the images, then runs the ``blockdev-add`` setup), and the
oracles: pairs of captures that must be identical, and stamp pairs that must
show one point in time.

A plan *kind* is data: one ``PlanKind`` per kind (its name, builder, the
action types it fires, whether it needs qcow2 disks), the rotation in
``PLANS``.  A builder reads the round's context and returns a ``Plan``; it
creates nothing, and what it hands to a later round (the bitmap base) is
part of what it returns.

Order matters for teeth: a backup of disk X is listed before X's snapshot (a
backup listed after it would read the frozen base and agree by
construction), and the two stamp witnesses are frozen first and last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from txnstorm.host.images import QemuImg
from txnstorm.transactions.actions import (
    Action,
    as_command,
    blockdev_backup,
    blockdev_snapshot,
    dirty_bitmap_add,
    dirty_bitmap_clear,
    dirty_bitmap_disable,
    dirty_bitmap_enable,
    dirty_bitmap_merge,
    dirty_bitmap_remove,
    drive_backup,
    filter_node,
    job_ids,
    snapshot_internal,
    snapshot_sync,
)


@dataclass(frozen=True)
class ImageRef:
    """Guest-visible content of an image (its backing chain included), or of
    one of its internal snapshots."""

    path: Path
    fmt: str = "qcow2"
    snapshot: str | None = None

    def describe(self) -> str:
        return f"{self.path.name}@{self.snapshot}" if self.snapshot else self.path.name


@dataclass
class DiskState:
    """The node a device writes to now, and its image file."""

    node: str
    image: Path
    fmt: str

    def ref(self) -> ImageRef:
        return ImageRef(self.image, self.fmt)


@dataclass(frozen=True)
class Pair:
    label: str
    a: ImageRef
    b: ImageRef
    # A pair that a control can only catch when that round's gap_disk wrote between its separate
    # commands (full + incremental: writes after the full backup, before the bitmap existed).
    gap_round: int | None = None


@dataclass(frozen=True)
class StampPair:
    """Captures of the two stamp witnesses (A written first, then B)."""

    label: str
    a: ImageRef
    b: ImageRef


@dataclass(frozen=True)
class NewImage:
    """An image the round engine creates before the round: a qcow2 overlay of ``backing``, or an
    empty qcow2 as large as ``size_of``'s virtual size."""

    path: Path
    backing: ImageRef | None = None
    size_of: ImageRef | None = None

    def create(self, qemu_img: QemuImg, size: int | None = None) -> Path:
        """Create it; ``size``: the virtual size of ``backing`` or ``size_of`` when the caller knows
        it (then neither is opened: either may be written only later, by an earlier round)."""
        if self.backing is not None:
            return qemu_img.create_overlay(self.path, self.backing.path, self.backing.fmt, size)
        if self.size_of is None:
            raise ValueError(f"{self.path}: an image needs a backing file or a size")
        return qemu_img.create(self.path, str(size or qemu_img.virtual_size(self.size_of.path, self.size_of.fmt)))


@dataclass
class Plan:
    name: str
    actions: list[Action]
    images: list[NewImage] = field(default_factory=list)  # created before the setup commands
    setup: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # QMP commands before firing
    pairs: list[Pair] = field(default_factory=list)
    stamp_pairs: list[StampPair] = field(default_factory=list)
    new_tops: dict[str, DiskState] = field(default_factory=dict)  # disk -> state after the round
    # Fired as separate commands (a control), a later pair can differ only if this disk completed
    # writes between the first command's answer and the last one's sending (the bitmap round).
    gap_disk: str | None = None
    hands_on: BitmapBase | None = None  # what the next round builds on (a bitmap and its full backup)

    @property
    def jobs(self) -> list[str]:
        return job_ids(self.actions)

    def prepare_images(self, qemu_img: QemuImg) -> None:
        """Create the images the plan declared (before its setup commands add them as nodes)."""
        for image in self.images:
            image.create(qemu_img)


@dataclass(frozen=True)
class BitmapBase:
    """What an incremental round builds on: the full backup and the dirty
    bitmap that one transaction of an earlier round created on ``node``."""

    disk: str
    node: str
    bitmap: str
    full_backup: Path
    round_no: int  # the round that created them
    others: tuple[BitmapBase, ...] = ()  # the same round's bitmaps and full backups of other disks


@dataclass
class RoundContext:
    round_no: int
    scratch: Path
    disks: dict[str, DiskState]  # current state, in topology order
    witnesses: tuple[str, str] | None = None  # stamp disks A, B
    bitmap_base: BitmapBase | None = None  # what an earlier round handed on (Plan.hands_on)

    def path(self, stem: str) -> Path:
        return self.scratch / f"{stem}-r{self.round_no}.qcow2"


@dataclass(frozen=True)
class PlanKind:
    """One kind of round, as data: its name, its builder, the transaction action types it fires
    (the capability check asks for them before boot), whether every disk must be qcow2 (internal
    snapshots live inside qcow2), and whether it uses up the bitmap base an earlier round handed
    on.  Calling a kind builds its plan for a round."""

    name: str
    build: Callable[[RoundContext, str], Plan]
    action_types: tuple[str, ...]
    needs_qcow2: bool = False
    uses_bitmap_base: bool = False

    def __call__(self, ctx: RoundContext, backup_disk: str) -> Plan:
        return self.build(ctx, backup_disk)

    def __repr__(self) -> str:
        return f"PlanKind({self.name})"



def _qcow2_node(node: str, path: Path, backing_none: bool) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {"driver": "qcow2", "node-name": node, "file": {"driver": "file", "filename": str(path)}}
    if backing_none:
        args["backing"] = None
    return ("blockdev-add", args)


def _witness_order(ctx: RoundContext) -> list[str]:
    """All disks, the stamp witnesses first and last, the others between."""
    names = list(ctx.disks)
    if ctx.witnesses:
        a, b = ctx.witnesses
        names = [a] + [n for n in names if n not in (a, b)] + [b]
    return names


def _ordered_snapshots(ctx: RoundContext, plan: Plan, snapshot: Callable[[str], Action]) -> None:
    """Snapshot every disk in witness order; the frozen witnesses are a stamp pair."""
    for name in _witness_order(ctx):
        plan.actions.append(snapshot(name))
    if ctx.witnesses:
        a, b = ctx.witnesses
        plan.stamp_pairs.append(StampPair("frozen bases", ctx.disks[a].ref(), ctx.disks[b].ref()))


def _snapshot_sync_every_disk(ctx: RoundContext, plan: Plan) -> None:
    """blockdev-snapshot-sync of every disk onto a new overlay (witness order)."""

    def snap(name: str) -> Action:
        overlay, node = ctx.path(f"{name}-overlay"), f"{name}-ovl{ctx.round_no}"
        plan.new_tops[name] = DiskState(node, overlay, "qcow2")
        return snapshot_sync(ctx.disks[name].node, overlay, node)

    _ordered_snapshots(ctx, plan, snap)


def _snapshot_sync_and_drive_backup(ctx: RoundContext, backup_disk: str) -> Plan:
    """drive-backup of one disk, then blockdev-snapshot-sync of every disk."""
    plan = Plan("blockdev-snapshot-sync + drive-backup", [])
    target = ctx.path(f"{backup_disk}-backup")
    plan.actions.append(
        drive_backup(ctx.disks[backup_disk].node, target, job_id=f"backup-{backup_disk}-r{ctx.round_no}")
    )
    plan.pairs.append(Pair("drive-backup == frozen base", ImageRef(target), ctx.disks[backup_disk].ref()))
    _snapshot_sync_every_disk(ctx, plan)
    return plan


def _blockdev_backups_and_snapshots(ctx: RoundContext, backup_disks: list[str], name: str) -> Plan:
    """blockdev-backup of ``backup_disks`` into pre-added targets, then blockdev-snapshot of every
    disk onto pre-added overlays."""
    plan = Plan(name, [])
    for backup_disk in backup_disks:
        target, target_node = ctx.path(f"{backup_disk}-bdbackup"), f"{backup_disk}-tgt{ctx.round_no}"
        plan.images.append(NewImage(target, size_of=ctx.disks[backup_disk].ref()))
        plan.setup.append(_qcow2_node(target_node, target, backing_none=False))
        job = f"bdbackup-{backup_disk}-r{ctx.round_no}"
        plan.actions.append(blockdev_backup(ctx.disks[backup_disk].node, target_node, job))
        plan.pairs.append(Pair("blockdev-backup == frozen base", ImageRef(target), ctx.disks[backup_disk].ref()))

    def snap(name: str) -> Action:
        state = ctx.disks[name]
        overlay, node = ctx.path(f"{name}-overlay"), f"{name}-ovl{ctx.round_no}"
        plan.images.append(NewImage(overlay, backing=state.ref()))
        plan.setup.append(_qcow2_node(node, overlay, backing_none=True))
        plan.new_tops[name] = DiskState(node, overlay, "qcow2")
        return blockdev_snapshot(state.node, node)

    _ordered_snapshots(ctx, plan, snap)
    return plan


def _snapshot_and_blockdev_backup(ctx: RoundContext, backup_disk: str) -> Plan:
    """blockdev-backup into a pre-added target, blockdev-snapshot onto pre-added overlays."""
    return _blockdev_backups_and_snapshots(ctx, [backup_disk], "blockdev-snapshot + blockdev-backup")


def _every_disk_backup_and_snapshot(ctx: RoundContext, backup_disk: str) -> Plan:
    """blockdev-backup of every disk, then blockdev-snapshot of every disk.

    Every disk's backup is captured before any snapshot flushes its disk (a flush lets the
    iothread run while the transaction waits), so each snapshot's flush is a window for the
    writes of every disk whose backup came first: on 7.2's class-1 build under TCG, with a guest
    that polls its completions, 12 of 64 rounds caught where one backup per round caught 4 of 64
    (docs/teeth.md)."""
    return _blockdev_backups_and_snapshots(ctx, list(ctx.disks), "blockdev-backup of every disk + blockdev-snapshot")


def _internal_snapshot_and_drive_backup(ctx: RoundContext, backup_disk: str) -> Plan:
    """An internal snapshot of every disk, the backed-up disk's followed by its drive-backup.

    Here the snapshot comes first: an internal snapshot leaves the node
    active (a backup listed after it still reads live data, so a sneaked
    write would show), and 7.2 refuses an internal snapshot of a node that a
    backup's filter already sits on ("Need a root block node").
    """
    plan = Plan("blockdev-snapshot-internal-sync + drive-backup", [])
    target = ctx.path(f"{backup_disk}-backup")
    name = f"txn-r{ctx.round_no}"
    state = ctx.disks[backup_disk]
    plan.pairs.append(
        Pair("drive-backup == internal snapshot", ImageRef(target), ImageRef(state.image, state.fmt, name))
    )
    for disk in _witness_order(ctx):
        plan.actions.append(snapshot_internal(ctx.disks[disk].node, name))
        if disk == backup_disk:
            job = f"backup-{backup_disk}-r{ctx.round_no}"
            plan.actions.append(drive_backup(state.node, target, job_id=job))
    if ctx.witnesses:
        sa, sb = (ctx.disks[w] for w in ctx.witnesses)
        plan.stamp_pairs.append(
            StampPair("internal snapshots", ImageRef(sa.image, sa.fmt, name), ImageRef(sb.image, sb.fmt, name))
        )
    return plan


def _two_backups(ctx: RoundContext, backup_disk: str) -> Plan:
    """drive-backup and blockdev-backup of the same disk: the same instant twice.

    The second backup must read through the first one's filter (the node is
    no longer a root).  QEMU 7.2 aborts on this transaction (known issue
    KI-5, bdrv_do_drained_end), so the plan is not in the matrix rotation;
    tests/transaction_known_issues.py reproduces it.
    """
    plan = Plan("drive-backup + blockdev-backup", [])
    state = ctx.disks[backup_disk]
    first = ctx.path(f"{backup_disk}-backup")
    second, second_node = ctx.path(f"{backup_disk}-bdbackup"), f"{backup_disk}-tgt{ctx.round_no}"
    plan.images.append(NewImage(second, size_of=state.ref()))
    plan.setup.append(_qcow2_node(second_node, second, backing_none=False))
    job = f"backup-{backup_disk}-r{ctx.round_no}"
    plan.actions.append(drive_backup(state.node, first, job_id=job))
    # The first backup's filter now sits above the node: read through it.
    plan.actions.append(blockdev_backup(filter_node(job), second_node, f"bdbackup-{backup_disk}-r{ctx.round_no}"))
    plan.pairs.append(Pair("drive-backup == blockdev-backup", ImageRef(first), ImageRef(second)))
    return plan


def _bitmap_and_full_backup(ctx: RoundContext, backup_disk: str) -> Plan:
    """Point 1: a full backup and a new dirty bitmap, in one transaction.

    The bitmap must account for every write after the full backup's point in
    time; the next round (``incremental_backup_and_snapshot``) checks it.
    """
    plan = Plan("drive-backup full + block-dirty-bitmap-add", [], gap_disk=backup_disk)
    state = ctx.disks[backup_disk]
    full, bitmap = ctx.path(f"{backup_disk}-full"), f"bm-r{ctx.round_no}"
    plan.actions.append(drive_backup(state.node, full, job_id=f"full-{backup_disk}-r{ctx.round_no}"))
    plan.actions.append(dirty_bitmap_add(state.node, bitmap))
    plan.hands_on = BitmapBase(backup_disk, state.node, bitmap, full, ctx.round_no)
    return plan


def _incremental_backup_and_snapshot(ctx: RoundContext, backup_disk: str) -> Plan:
    """Point 2: incremental backup by the bitmap (onto the full backup) and a
    snapshot of every disk.  full + incremental must equal the frozen base."""
    base = ctx.bitmap_base
    if base is None:
        raise ValueError("an incremental round must follow a bitmap + full backup round")
    disk = base.disk
    plan = Plan("blockdev-backup incremental + blockdev-snapshot-sync", [])
    incremental, target_node = ctx.path(f"{disk}-incremental"), f"{disk}-incr{ctx.round_no}"
    plan.images.append(NewImage(incremental, backing=ImageRef(base.full_backup)))
    plan.setup.append(_qcow2_node(target_node, incremental, backing_none=False))
    job = f"incr-{disk}-r{ctx.round_no}"
    plan.actions.append(blockdev_backup(base.node, target_node, job, sync="incremental", bitmap=base.bitmap))
    plan.pairs.append(Pair(
        "full + incremental backup == frozen base", ImageRef(incremental), ctx.disks[disk].ref(), base.round_no
    ))  # fmt: skip
    _snapshot_sync_every_disk(ctx, plan)
    return plan


def lifecycle_bitmaps(round_no: int) -> tuple[str, str]:
    """The bitmap lifecycle's two bitmaps of round ``round_no``: (enabled at it, cleared at it)."""
    return f"bm-enabled-r{round_no}", f"bm-cleared-r{round_no}"


def dropped_of(enabled: str) -> str:
    """The bitmap the lifecycle's second round adds beside ``enabled`` and removes in its transaction."""
    return f"{enabled}-dropped"


def twin_of(cleared: str) -> str:
    """The bitmap added beside ``cleared`` at the point it was cleared: the two must hold the same
    writes (a clear lost, or done at another point, leaves them apart)."""
    return f"{cleared}-twin"


def _bitmaps_enabled_and_cleared_at_full_backups(ctx: RoundContext, backup_disk: str) -> Plan:
    """Point 1 of the bitmap lifecycle: a full backup of two disks, the first disk's bitmap
    enabled and the second's cleared, in one transaction.

    Both bitmaps are added before the round, while the storm writes: the first disabled, so it
    records nothing until its ``block-dirty-bitmap-enable``; the second enabled, so it holds
    writes from before the point in time until its ``block-dirty-bitmap-clear``.  From the
    transaction on, each must account for every write after its disk's full backup; the next
    round (``bitmaps_merged_disabled_and_backed_up``) checks it.  A bitmap whose enable was lost
    records nothing, and the incremental backup built from it misses every write of the storm.
    The clear's twin (``twin_of``) is added right after it: their counts must agree (a lost clear
    leaves more bits, which no image oracle sees; ``oracles.bitmap_state``).  The enable comes
    last: fired as separate commands (the control), the first disk's writes between its full
    backup and the enable are in neither (``gap_disk``)."""
    other = next((d for d in ctx.disks if d != backup_disk), None)
    if other is None:
        raise ValueError("the bitmap lifecycle needs two disks (one bitmap enabled, one cleared)")
    plan = Plan("drive-backup full x2 + block-dirty-bitmap-clear + -enable", [], gap_disk=backup_disk)
    enabled, cleared = lifecycle_bitmaps(ctx.round_no)
    first, second = ctx.disks[backup_disk], ctx.disks[other]
    plan.setup += [as_command(dirty_bitmap_add(first.node, enabled, disabled=True)),
                   as_command(dirty_bitmap_add(second.node, cleared))]  # fmt: skip
    bases = []
    for disk, state, bitmap in ((backup_disk, first, enabled), (other, second, cleared)):
        full = ctx.path(f"{disk}-full")
        plan.actions.append(drive_backup(state.node, full, job_id=f"full-{disk}-r{ctx.round_no}"))
        bases.append(BitmapBase(disk, state.node, bitmap, full, ctx.round_no))
    plan.actions += [dirty_bitmap_clear(second.node, cleared), dirty_bitmap_add(second.node, twin_of(cleared)),
                     dirty_bitmap_enable(first.node, enabled)]  # fmt: skip
    plan.hands_on = replace(bases[0], others=(bases[1],))
    return plan


def _bitmaps_merged_disabled_and_backed_up(ctx: RoundContext, backup_disk: str) -> Plan:
    """Point 2 of the bitmap lifecycle, one transaction: a snapshot of every disk, the enabled
    bitmap merged into a new disabled one and then disabled, a bitmap added beside it removed
    (``dropped_of``: a remove whose commit step was lost leaves it, held busy), and an incremental backup of each
    disk's frozen node (the first by the merged bitmap, the second by the cleared one, each onto
    its full backup).  Full + incremental must equal the frozen base, on each disk: a lost enable,
    a lost merge or a clear after the point in time loses writes.  (A lost disable or clear only
    leaves more bits: an incremental that copies more is still right, so no image oracle sees it;
    ``oracles.bitmap_state`` reads the bitmaps themselves, which the backups leave as they were:
    ``sync`` bitmap, which copies what ``incremental`` copies, with ``bitmap-mode`` never.)

    Here the snapshots come first: a bitmap action drains nothing, so one listed before every
    action that drains its node runs while the iothread still completes the guest's writes (on
    10.2.2 a merge listed first missed writes that the frozen base then held: 1 of 6 runs).  After
    the snapshots the bitmaps sit on frozen nodes, and what the incremental copies is still their
    choice: reading the frozen base does not make it agree by construction."""
    base = ctx.bitmap_base
    if base is None or not base.others:
        raise ValueError("the bitmap lifecycle's second round must follow its first")
    enabled, merged = base.bitmap, f"bm-merged-r{ctx.round_no}"
    plan = Plan("blockdev-snapshot-sync + block-dirty-bitmap-merge + -disable + blockdev-backup incremental x2", [])
    _snapshot_sync_every_disk(ctx, plan)
    plan.setup += [as_command(dirty_bitmap_add(base.node, merged, disabled=True)),
                   as_command(dirty_bitmap_add(base.node, dropped_of(enabled)))]  # fmt: skip
    plan.actions += [dirty_bitmap_merge(base.node, merged, [enabled]), dirty_bitmap_disable(base.node, enabled),
                     dirty_bitmap_remove(base.node, dropped_of(enabled))]  # fmt: skip
    for held, bitmap, what in ((base, merged, "merged from the enabled"), (base.others[0], base.others[0].bitmap,
                                                                           "cleared")):  # fmt: skip
        incremental, target_node = ctx.path(f"{held.disk}-incremental"), f"{held.disk}-incr{ctx.round_no}"
        plan.images.append(NewImage(incremental, backing=ImageRef(held.full_backup)))
        plan.setup.append(_qcow2_node(target_node, incremental, backing_none=False))
        job = f"incr-{held.disk}-r{ctx.round_no}"
        # sync "bitmap" copies what "incremental" copies; "never" leaves the count for oracles.bitmap_state
        plan.actions.append(blockdev_backup(held.node, target_node, job, sync="bitmap", bitmap=bitmap,
                                            bitmap_mode="never"))  # fmt: skip
        plan.pairs.append(Pair(f"full + incremental ({what} bitmap) == frozen base", ImageRef(incremental),
                               ctx.disks[held.disk].ref(), base.round_no))  # fmt: skip
    return plan


snapshot_sync_and_drive_backup = PlanKind(
    "snapshot-sync+drive-backup", _snapshot_sync_and_drive_backup, ("drive-backup", "blockdev-snapshot-sync")
)
bitmap_and_full_backup = PlanKind(
    "bitmap+full-backup", _bitmap_and_full_backup, ("drive-backup", "block-dirty-bitmap-add")
)
incremental_backup_and_snapshot = PlanKind(
    "incremental-backup+snapshot-sync", _incremental_backup_and_snapshot, ("blockdev-backup", "blockdev-snapshot-sync"),
    uses_bitmap_base=True,
)  # fmt: skip
snapshot_and_blockdev_backup = PlanKind(
    "blockdev-snapshot+blockdev-backup", _snapshot_and_blockdev_backup, ("blockdev-backup", "blockdev-snapshot")
)
internal_snapshot_and_drive_backup = PlanKind(
    "internal-snapshot+drive-backup", _internal_snapshot_and_drive_backup,
    ("blockdev-snapshot-internal-sync", "drive-backup"), needs_qcow2=True,
)  # fmt: skip
# Not in the rotation: the race test's plan (tests/transaction_matrix.py).
every_disk_backup_and_snapshot = PlanKind(
    "every-disk-blockdev-backup+blockdev-snapshot", _every_disk_backup_and_snapshot,
    ("blockdev-backup", "blockdev-snapshot"),
)  # fmt: skip
# Not in the rotation: the bitmap lifecycle (tests/transaction_bitmaps.py), the enable, clear,
# merge and disable actions in transactions; the second must directly follow the first.
bitmaps_enabled_and_cleared_at_full_backups = PlanKind(
    "bitmaps-enabled+cleared+full-backups", _bitmaps_enabled_and_cleared_at_full_backups,
    ("drive-backup", "block-dirty-bitmap-clear", "block-dirty-bitmap-add", "block-dirty-bitmap-enable"),
)  # fmt: skip
bitmaps_merged_disabled_and_backed_up = PlanKind(
    "snapshot-sync+bitmaps-merged+disabled+incremental-backups", _bitmaps_merged_disabled_and_backed_up,
    ("blockdev-snapshot-sync", "block-dirty-bitmap-merge", "block-dirty-bitmap-disable", "block-dirty-bitmap-remove",
     "blockdev-backup"),
    uses_bitmap_base=True,
)  # fmt: skip


RECORDER = "bm-recorder"  # an enabled bitmap a test adds before its rounds: the storm's writes, to copy


def _bitmaps_changed_every_way(recorder_node: str, ctx: RoundContext, backup_disk: str) -> Plan:
    """Every bitmap action but ``add``, on bitmaps of one disk, for a transaction that must fail
    (tests/transaction_rollback.py adds the failing action): an enabled bitmap disabled, a disabled
    one enabled, one cleared, one merged into, one removed.  Each action has an abort step of its
    own, which only a failing transaction runs, and each leaves what ``rollback.bitmap_changes``
    sees if that step is lost: the recording flag, the busy flag, the bits.  The cleared bitmap is
    a disabled copy of ``RECORDER`` on ``recorder_node`` (merged in the setup: it holds the storm's
    writes until then and keeps them), the merged-into one is empty and disabled, the merge's
    source is ``RECORDER``: so a clear or a merge that was not undone changes a count that cannot
    change otherwise.

    A ``blockdev-backup`` of the disk comes first: its drained section holds the disk still until
    the transaction's clean step.  A bitmap action drains nothing, so without it the guest's
    writes land while the actions are prepared and aborted: the bitmap enabled and then disabled
    again by the abort kept 32 KiB of them (stock 10.2.2, once), and one disabled and enabled
    again would miss theirs (see docs/teeth.md: not yet shown to lose a write)."""
    state = ctx.disks[backup_disk]
    node, n = state.node, ctx.round_no
    recorder = {"node": recorder_node, "name": RECORDER}
    on, off, cleared, merged, removed = (f"bm-{what}-r{n}" for what in ("on", "off", "cleared", "merged", "removed"))
    plan = Plan("blockdev-backup + block-dirty-bitmap-enable + -disable + -clear + -merge + -remove", [])
    target, target_node = ctx.path(f"{backup_disk}-held"), f"{backup_disk}-held{n}"
    plan.images.append(NewImage(target, size_of=state.ref()))
    plan.setup += [_qcow2_node(target_node, target, backing_none=True),
                   as_command(dirty_bitmap_add(node, on)), as_command(dirty_bitmap_add(node, off, disabled=True)),
                   as_command(dirty_bitmap_add(node, cleared, disabled=True)),
                   as_command(dirty_bitmap_merge(node, cleared, [recorder])),
                   as_command(dirty_bitmap_add(node, merged, disabled=True)),
                   as_command(dirty_bitmap_add(node, removed))]  # fmt: skip
    plan.actions += [blockdev_backup(node, target_node, f"held-{backup_disk}-r{n}"),
                     dirty_bitmap_enable(node, off), dirty_bitmap_disable(node, on), dirty_bitmap_clear(node, cleared),
                     dirty_bitmap_merge(node, merged, [recorder]), dirty_bitmap_remove(node, removed)]  # fmt: skip
    return plan


def bitmaps_changed_every_way(recorder_node: str) -> PlanKind:
    """The plan of ``_bitmaps_changed_every_way`` with its recorder on ``recorder_node`` (a disk's
    first node: where the test added ``RECORDER``; it stays there when a snapshot moves the disk)."""
    build = partial(_bitmaps_changed_every_way, recorder_node)
    return PlanKind("bitmaps-enabled+disabled+cleared+merged+removed", build,
                    ("blockdev-backup", "block-dirty-bitmap-enable", "block-dirty-bitmap-disable",
                     "block-dirty-bitmap-clear", "block-dirty-bitmap-merge", "block-dirty-bitmap-remove"))  # fmt: skip


# Not in the rotation: QEMU 7.2 aborts on it (KI-5); tests/transaction_known_issues.py reproduces it.
two_backups = PlanKind("drive-backup+blockdev-backup", _two_backups, ("drive-backup", "blockdev-backup"))

# The rotation, in order: bitmap+full-backup must be directly followed by
# incremental+snapshot (which uses the bitmap base it hands on).
PLANS: dict[str, PlanKind] = {
    kind.name: kind
    for kind in (
        snapshot_sync_and_drive_backup, bitmap_and_full_backup, incremental_backup_and_snapshot,
        snapshot_and_blockdev_backup, internal_snapshot_and_drive_backup,
    )
}  # fmt: skip


def action_types(kinds: Iterable[PlanKind]) -> list[str]:
    """The transaction action types these plans fire (the capability check before boot)."""
    return sorted({t for kind in kinds for t in kind.action_types})


def plans_for(formats: set[str]) -> list[str]:
    """The plans a topology with these disk formats supports."""
    return [name for name, kind in PLANS.items() if not kind.needs_qcow2 or formats == {"qcow2"}]
