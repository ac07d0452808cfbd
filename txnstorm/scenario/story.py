"""The running storm of one boot, with one verb per step of the story.

A scenario test reads as its story::

    with self.storm(topology, plans) as storm:     # boot, fio on every disk, stamp writers
        for plan in self.rounds(plans):
            storm.fire(plan)                       # one transaction at a seeded moment
    findings = self.verify(storm)                  # QEMU has quit: every oracle on the captures

``every_round_fired(self.storm(topology, rounds), rounds)`` is that block for a test whose rounds
all fire the same way.

``fire(plan, atomic=False)`` is the negative control (the same actions as
separate commands); ``fire_with_abort`` is the all-or-nothing round (the
plan plus a failing action).  The storm keeps what the rounds hand on: the
disks' current nodes and images, and the full backup and bitmap an
incremental round builds on.

``Storm`` is the one rounds engine (prepare what a plan declared, fire,
jobs, overlap, verify) for every kind of storm: what writes is a
``Writers`` (``scenario/writers.py``), built by ``guest_storm`` here,
``daemon_storm.daemon_storm`` and ``guest_on_daemon.guest_on_daemon_storm``.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from txnstorm.errors import DeviceStalled, QMPCommandError, StormStuckInGuest, TxnstormError
from txnstorm.host.images import QemuImg
from txnstorm.oracles import stall
from txnstorm.oracles.rollback import ABORT_ACTION, AbortedRound, Refusal, graph_state
from txnstorm.scenario.ahead import RoundsAhead, RoundState, bitmap_base_after
from txnstorm.scenario.rounds import (
    Finding,
    Overlap,
    RoundRecord,
    Timeline,
    extracted,
    verify_rounds,
)
from txnstorm.scenario.writers import GuestWriters, Witnesses, Writers
from txnstorm.transactions.actions import fire_separately, fire_transaction, snapshot_index, wait_jobs
from txnstorm.transactions.plans import BitmapBase, DiskState, Plan, PlanKind, RoundContext
from txnstorm.vm.boot import Booted
from txnstorm.vm.qemu_process import QemuProcess
from txnstorm.vm.write_counters import wait_until_writing
from txnstorm.workload.fio import StormHung

CONTROL_GAP_S = 0.5  # separate commands this far apart: the control's window
GAP = "gap disk"  # a control's counts: the plan's gap disk's completed writes (not a stamp writer)
DELAY_S = (0.05, 0.8)  # each round fires this far into the storm (seeded)


@dataclass(frozen=True)
class Workspace:
    """Where a test's captures go, the qemu-img that makes and reads them, the seed its rounds'
    timing comes from, and the rounds it declared (prepared before the storm starts)."""

    scratch: Path
    qemu_img: QemuImg
    seed: int
    rounds: tuple[PlanKind, ...] = ()


class Storm:
    """The rounds engine: the rounds fire at ``vm`` (the guest's QEMU, or a qemu-storage-daemon) and
    capture its images while the writers write (``scenario/writers.py``: the guest's fio and stamp
    writer, host NBD clients, or a guest on the daemon's exports)."""

    def __init__(
        self, vm: QemuProcess, start_writers: Callable[[], Writers], work: Workspace,
        witnesses: Witnesses | None, after_qemu: contextlib.ExitStack,
    ) -> None:  # fmt: skip
        """What the rounds keep: the disks' current nodes and images, the seeded timing, the
        timeline, the write counters read (``write_samples``) and the records.  The declared
        rounds are prepared (``scenario/ahead.py``), then ``start_writers`` starts the storm."""
        self.vm = vm
        self.disks = [d.name for d in vm.topology.disks]
        self.scratch, self.qemu_img, self.witnesses = work.scratch, work.qemu_img, witnesses
        self.after_qemu = after_qemu  # what must close only after QEMU quit (NBD clients: KI-1)
        self.rng = random.Random(work.seed)
        self.timeline = Timeline()
        self.records: list[RoundRecord] = []
        self.states = {d.name: DiskState(d.node, vm.images[d.name], d.fmt) for d in vm.topology.disks}
        self.bitmap_base: BitmapBase | None = None
        self.round_no = 0
        self.write_samples: list[dict[str, float]] = []  # every write_ops() reading, for the timeline
        self.last_counts: dict[str, int] | None = None  # the last reading a round took
        self.ahead = RoundsAhead.prepare(work.rounds, self.context(), self.disks[0], self.qemu_img)
        if work.rounds:
            self.mark("rounds prepared", rounds=len(work.rounds))
        self.writers = start_writers()
        self.mark("storm started", **self.writers.started())

    def mark(self, event: str, **data: object) -> None:
        """An event on the timeline, at the rounds' process."""
        self.timeline.mark(self.vm, event, **data)

    def write_ops(self) -> dict[str, int]:
        """Completed writes per disk as the writers count them (kept for the timeline)."""
        counts = self.writers.write_ops()
        self.write_samples.append({"t": round(time.monotonic() - self.vm.launched_at, 3), **counts})
        return counts

    # -- the rounds --------------------------------------------------------
    def context(self) -> RoundContext:
        """What the next round's plan is built from: the disks' current state, the bitmap base."""
        witnesses = self.witnesses.disks if self.witnesses else None
        return RoundContext(self.round_no, self.scratch, dict(self.states), witnesses, self.bitmap_base)

    def _next_round(self, kind: PlanKind, backup_disk: str) -> tuple[RoundContext, Plan, float]:
        """The next round's context, its plan (prepared before the storm, else built now; its
        nodes are added now) and its seeded delay."""
        self.round_no += 1
        ctx = self.context()
        planned = self.ahead.take(kind, backup_disk, RoundState.of(self.round_no, self.states, self.bitmap_base))
        if planned is None:
            plan = kind(ctx, backup_disk)
            plan.prepare_images(self.qemu_img)
        else:
            plan = planned.plan
            for image in planned.deferred:
                image.create(self.qemu_img)
        for command, args in plan.setup:
            self.vm.cmd(command, **args)
        self.bitmap_base = bitmap_base_after(kind, plan, self.bitmap_base)
        return ctx, plan, round(self.rng.uniform(*DELAY_S), 3)

    def still_writing(self) -> dict[str, int]:
        """Every device completes writes; if one stopped, it is examined (``oracles/stall.py``)."""
        try:
            return wait_until_writing(self, self.disks)
        except DeviceStalled as stalled:
            self.writers.examine(stalled, stalled.disks or self.disks, self.mark)
            self.blame_the_guest_if_nothing_else(stalled)
            raise

    def blame_the_guest_if_nothing_else(self, hung: DeviceStalled) -> None:
        """A writer that did not end, or a storm that wrote nothing, while nothing was in flight in
        the guest's block layer and QEMU's side held nothing: the suite's ERROR (StormStuckInGuest),
        never a FAIL of QEMU."""
        try:
            qemu_side = self.writers.qemu_side_idle(hung)
            if qemu_side is None:
                return
            why = stall.stuck_in_guest(self.writers.guest_inflight(hung), qemu_side, self.writers.writer_waits(hung))
        except TxnstormError as exc:  # the stall stays the verdict
            self.mark("storm stuck: guest side not judged", error=str(exc))
            return
        if why is None:
            return
        self.mark("storm stuck in the guest", why=why)
        raise StormStuckInGuest(f"{hung.args[0] if hung.args else hung}: {why}") from hung

    def fire(self, kind: PlanKind, atomic: bool = True, backup_disk: str | None = None) -> RoundRecord:
        """One round: at a seeded moment into the storm, fire the plan as one
        transaction (``atomic=False``: as separate commands, the control),
        wait for its jobs, prove the storm overlapped, adopt the new tops."""
        ctx, plan, delay = self._next_round(kind, backup_disk or self.disks[0])
        time.sleep(delay)  # the seeded moment; no counter reads meanwhile (each takes QEMU's big lock)
        before = self.writing_again()
        self.mark(f"round {ctx.round_no}: firing", plan=plan.name, atomic=atomic, write_ops=before)
        progress: dict[str, int] = {}
        gap_writes: int | None = None
        if atomic:
            fired = fire_transaction(self.vm, plan.actions)
        else:
            # (not ``before``: that is the round's write counters, which its overlap record keeps)
            sent: list[dict[str, int]] = []  # each command's writer counts right before it was sent
            answered: list[dict[str, int]] = []  # and once it was answered
            fired = fire_separately(
                self.vm, plan.actions, CONTROL_GAP_S,
                before_each=lambda i: sent.append(self.control_counts(plan, i, first=False)),
                after_each=lambda i: answered.append(self.control_counts(plan, i, first=True)),
            )  # fmt: skip
            progress = self.writes_between_witness_captures(plan, sent, answered)
            if plan.gap_disk is not None and len(plan.actions) > 1:
                gap_writes = sent[-1][GAP] - answered[0][GAP]
        said = {"stamp_writes_during": progress} if progress else {}
        if gap_writes is not None:
            said["gap_writes"] = {plan.gap_disk: gap_writes}
        seconds = round(fired.done_at - fired.sent_at, 4)
        self.mark(f"round {ctx.round_no}: {fired.mode} answered", seconds=seconds, **said)
        wait_jobs(self.vm, plan.jobs)
        after_actions = self.write_ops()
        self.last_counts = after_actions
        self.mark(f"round {ctx.round_no}: jobs completed", jobs=plan.jobs, write_ops=after_actions)
        self.states.update(plan.new_tops)
        # The overlap is proven by the next reading that shows every disk writing again (the next
        # round's, or the stop's): no settle of its own.
        pending = Overlap(before, after_actions, {}, False)
        record = RoundRecord(ctx.round_no, plan, fired, pending, delay, progress, gap_writes)
        self.records.append(record)
        return record

    def writes_between_witness_captures(
        self, plan: Plan, before: Sequence[dict[str, int]], after: Sequence[dict[str, int]]
    ) -> dict[str, int]:
        """At most how many stamp writes each writer completed between the separate commands that
        captured the two witnesses (``before``/``after``: its count right before each command was
        sent and once it was answered): from before the first of the two was sent to after the
        second was answered; over the whole round when the plan does not snapshot both witnesses."""
        first, last = 0, len(after) - 1
        if self.witnesses is not None:
            found = (snapshot_index(plan.actions, self.states[w].node) for w in self.witnesses.disks)
            at = [i for i in found if i is not None]
            if len(at) == 2:
                first, last = min(at), max(at)
        if not before or not after:
            return {}
        return {w: after[last][w] - n for w, n in before[first].items() if w != GAP and after[last].get(w) is not None}

    def control_counts(self, plan: Plan, i: int, first: bool) -> dict[str, int]:
        """Right before a control's command ``i`` is sent (``first=False``) or once it was answered:
        the stamp writers' counts, and under ``GAP`` the plan's gap disk's completed writes (after
        the first command, before the last: the gap a bitmap control needs writes in)."""
        counts = self.stamp_writes()
        edge = 0 if first else len(plan.actions) - 1
        if plan.gap_disk is not None and i == edge:
            counts[GAP] = self.write_ops()[plan.gap_disk]
        return counts

    def stamp_writes(self) -> dict[str, int]:
        """Stamp writes each writer whose progress is told has completed so far (a control round's
        oracle is judged by what it wrote between the commands)."""
        return self.writers.stamp_writes()

    def writing_again(self) -> dict[str, int]:
        """The counters now, once every disk wrote since the last reading (the previous round's,
        right after its jobs): one reading when they all have, else the wait ``still_writing`` does
        (a guest with 64 writes in flight can pause a disk for a second while it takes the other's
        completions; a loaded host pauses NBD clients; none within 30 s is a stall, examined).
        That reading proves the previous round's overlap: writes after its actions."""
        now = self.write_ops() if self.last_counts is not None else None
        if now is None or any(now.get(d, 0) <= self.last_counts.get(d, 0) for d in self.disks):
            started = time.monotonic()
            now = self.still_writing()
            if self.last_counts is not None and (paused := time.monotonic() - started) > self.writers.PAUSE_NOTED_S:
                self.mark("a disk paused after the actions", seconds=round(paused, 2))
        self.prove_overlap(now)
        self.last_counts = now
        return now

    def prove_overlap(self, later: dict[str, int]) -> None:
        """The last round's overlap, from a reading after its actions (``Overlap.check`` judges it)."""
        if not self.records or self.records[-1].overlap.later:
            return
        last = self.records[-1]
        overlap = Overlap(last.overlap.before, last.overlap.after_actions, later, self.writers.is_running())
        self.records[-1] = replace(last, overlap=overlap)
        self.mark(f"round {last.round_no}: overlap proven", later=later)

    def fire_with_abort(self, kind: PlanKind, atomic: bool = True, refusal: Refusal = ABORT_ACTION) -> AbortedRound:
        """All or nothing: the plan plus a failing action (``refusal``: the ``abort`` action, or
        one that fails in its own prepare step) in one transaction, which QEMU must refuse
        leaving the graph as it was and every device writing (``atomic=False``: the actions
        alone as separate commands, the control, whose changes the graph check must name)."""
        ctx, plan, delay = self._next_round(kind, self.disks[0])
        before = graph_state(self.vm)
        time.sleep(delay)
        self.writing_again()
        self.mark(f"round {ctx.round_no}: firing", plan=plan.name, atomic=atomic, failing=atomic and refusal.name)
        answer = ""
        if atomic:
            try:
                self.vm.cmd("transaction", actions=[*plan.actions, refusal.action])
            except QMPCommandError as exc:
                answer = f"{exc.error_class}: {exc.desc}"
            else:
                raise TxnstormError(f"QEMU accepted a transaction with a failing action ({refusal.name})")
        else:
            fire_separately(self.vm, plan.actions, CONTROL_GAP_S)
        leftovers = before.differences(graph_state(self.vm))
        self.mark(f"round {ctx.round_no}: graph compared", leftovers=len(leftovers))
        if not atomic:
            wait_jobs(self.vm, plan.jobs)
            self.states.update(plan.new_tops)
        self.still_writing()  # no drained section left behind, no lost request
        self.mark(f"round {ctx.round_no}: devices write again")
        return AbortedRound(ctx.round_no, plan.name, answer, leftovers, refusal)

    # -- the end -------------------------------------------------------------
    def stop(self) -> None:
        """Stop every writer (fio's result lands in the log dir); a writer that never ends is a
        stall too, examined while QEMU runs."""
        self.mark("storm stopping")
        try:
            if self.records:  # the last round's overlap: writes after its actions, before the stop
                self.writing_again()
            self.writers.stop(self.mark)
        except StormHung as hung:
            self.writers.examine(hung, self.disks, self.mark)
            self.blame_the_guest_if_nothing_else(hung)
            raise

    def verify(self) -> list[Finding]:
        """Once QEMU has quit (every image closed and flushed): each round's
        storm overlapped its actions, then every oracle on the captures;
        each verdict also goes to ``oracle.log``."""
        for record in self.records:
            record.overlap.check(self.disks)
        regions = self.witnesses.regions if self.witnesses else None
        findings = verify_rounds(self.qemu_img, self.records, self.scratch, regions)
        with open(self.vm.logdir / "oracle.log", "a") as log:
            log.writelines(finding.describe() + "\n" for finding in findings)
        return findings

    def drop_captures_of_agreeing_rounds(self, violated_rounds: set[int]) -> tuple[int, int]:
        """A failed test keeps its images as evidence; the captures of the rounds whose checks all
        agreed are not evidence (24 race rounds of full backups of two 64 MiB disks were 3 GiB): their
        backup targets and extracted snapshots go, unless another image backs onto one.  The
        disks' images and overlays stay (the violated rounds' frozen bases are their chains).
        Returns (files removed, bytes freed)."""
        backings = {image.backing.path for r in self.records for image in r.plan.images if image.backing}
        backings |= {held.full_backup for r in self.records if r.plan.hands_on
                     for held in (r.plan.hands_on, *r.plan.hands_on.others)}  # fmt: skip
        removed = freed = 0
        for record in self.records:
            if record.round_no in violated_rounds:
                continue
            refs = [ref for pair in record.plan.pairs for ref in (pair.a, pair.b)]
            refs += [ref for pair in record.plan.stamp_pairs for ref in (pair.a, pair.b)]
            leaves = {pair.a.path for pair in record.plan.pairs if not pair.a.snapshot} - backings
            leaves -= {state.image for state in self.states.values()}
            leaves |= {extracted(ref, self.scratch) for ref in refs if ref.snapshot}
            for path in leaves:
                if path.is_file() and path.parent == self.scratch:
                    freed += path.stat().st_size
                    path.unlink()
                    removed += 1
        return removed, freed


def every_round_fired(
    storm: contextlib.AbstractContextManager[Storm], rounds: Sequence[PlanKind], atomic: bool = True
) -> Storm:
    """The story's middle, once the test has its rounds: the storm entered (boot, writers), every
    round fired in turn (as one transaction each, ``atomic=False``: as separate commands, the
    control), the storm left (writers stopped, QEMU quit).  Returns the storm for ``verify``."""
    with storm as running:
        for plan in rounds:
            running.fire(plan, atomic=atomic)
    return running


def rounds_of(plans: Sequence[PlanKind], count: int) -> list[PlanKind]:
    """``count`` rounds, the plans in turn."""
    return [plans[i % len(plans)] for i in range(count)]


def guest_storm(
    booted: Booted, work: Workspace, witnesses: Witnesses | None, after_qemu: contextlib.ExitStack
) -> Storm:
    """fio on every disk of ``booted``, its stamp writers on the witnesses, the rounds at its QEMU."""
    return Storm(booted.vm, lambda: GuestWriters(booted, witnesses, after_qemu), work, witnesses, after_qemu)
