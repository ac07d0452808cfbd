"""Rounds prepared before the storm: every plan a test declared, built and its images created
while nothing writes yet.

A plan declares what it needs (``Plan.images``, ``Plan.setup``) and what it leaves
(``Plan.new_tops``, ``Plan.hands_on``), so the whole sequence of rounds can be built from the
disks' first state: round N's plan from the state rounds 1..N-1 leave.  Creating its images then
costs nothing during the storm, where each ``qemu-img`` process competes with the guest's vCPU and
a polling iothread for the host's cores (up to a second per round on a loaded 2-core host).

Every image is created with its size known (each capture of a disk has the disk's virtual size),
so its source need not exist yet: an overlay onto the overlay an earlier round's
blockdev-snapshot-sync will create, an incremental target onto the full backup an earlier
round's drive-backup will write (``qemu-img create -u``).  A round fired
from another state than the one its plan was built from (another kind, an aborted round that
changed nothing) drops what was prepared from there on; those rounds are built when they fire,
as without preparation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from txnstorm.host.images import QemuImg
from txnstorm.transactions.plans import BitmapBase, DiskState, NewImage, Plan, PlanKind, RoundContext


@dataclass(frozen=True)
class RoundState:
    """What a round's plan is built from: its number, the disks' nodes and images, the bitmap base."""

    round_no: int
    disks: tuple[tuple[str, DiskState], ...]
    bitmap_base: BitmapBase | None

    @classmethod
    def of(cls, round_no: int, disks: dict[str, DiskState], bitmap_base: BitmapBase | None) -> RoundState:
        return cls(round_no, tuple(disks.items()), bitmap_base)


def bitmap_base_after(kind: PlanKind, plan: Plan, before: BitmapBase | None) -> BitmapBase | None:
    """The bitmap base the next round builds on: the one this plan hands on, none once an
    incremental round used it up, else the one before."""
    if plan.hands_on is not None:
        return plan.hands_on
    return None if kind.uses_bitmap_base else before


@dataclass
class PlannedRound:
    kind: PlanKind
    backup_disk: str
    built_from: RoundState
    plan: Plan
    deferred: list[NewImage] = field(default_factory=list)  # created when the round fires


class RoundsAhead:
    """The declared rounds' plans, in order, each taken by the round it was built for."""

    def __init__(self, planned: Sequence[PlannedRound] = ()) -> None:
        self.planned = deque(planned)

    @classmethod
    def prepare(
        cls, kinds: Sequence[PlanKind], ctx: RoundContext, backup_disk: str, qemu_img: QemuImg
    ) -> RoundsAhead:
        """Build ``kinds`` in turn from ``ctx`` (the state before round ``ctx.round_no + 1``) and
        create every image whose size is known (each plan's here: a capture has its disk's size);
        one whose size is not is left to its round (``deferred``)."""
        disks, bitmap_base = dict(ctx.disks), ctx.bitmap_base
        # Every capture of a disk has the disk's virtual size: known for the images a plan will
        # create from its source's, whether or not an earlier round has written that source yet.
        sizes = {state.image: qemu_img.virtual_size(state.image, state.fmt) for state in disks.values()}
        planned: list[PlannedRound] = []
        for number, kind in enumerate(kinds, start=ctx.round_no + 1):
            round_ctx = RoundContext(number, ctx.scratch, dict(disks), ctx.witnesses, bitmap_base)
            plan = kind(round_ctx, backup_disk)
            entry = PlannedRound(kind, backup_disk, RoundState.of(number, disks, bitmap_base), plan)
            planned.append(entry)
            for image in plan.images:
                source = image.backing or image.size_of
                size = sizes.get(source.path) if source is not None else None
                if size is None:
                    entry.deferred.append(image)
                    continue
                image.create(qemu_img, size)
                sizes[image.path] = size
            for disk, state in plan.new_tops.items():
                sizes[state.image] = sizes[disks[disk].image]
            if plan.hands_on is not None:
                for held in (plan.hands_on, *plan.hands_on.others):
                    sizes[held.full_backup] = sizes[disks[held.disk].image]
            disks.update(plan.new_tops)
            bitmap_base = bitmap_base_after(kind, plan, bitmap_base)
        return cls(planned)

    def take(self, kind: PlanKind, backup_disk: str, state: RoundState) -> PlannedRound | None:
        """The plan prepared for this round, if it was built from this very state (else nothing
        prepared holds any more: every later plan was built from a state this one would leave)."""
        if not self.planned:
            return None
        entry = self.planned.popleft()
        if entry.kind is kind and entry.backup_disk == backup_disk and entry.built_from == state:
            return entry
        self.planned.clear()
        return None

    def __len__(self) -> int:
        return len(self.planned)
