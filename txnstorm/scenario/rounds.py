"""The pieces a round is made of: the timeline, proof that the storm
overlapped the actions, round records, QEMU's view of the disks' queues, and
running every oracle on a round's captures (the guest's fio storm itself is
``workload/guest_storm.py``).  ``story.Storm`` composes them
into the story every test tells; tests never repeat them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from txnstorm.errors import TxnstormError
from txnstorm.host.images import QemuImg
from txnstorm.oracles.compare import compare_images
from txnstorm.oracles.stamps import WRITES_TO_DIFFER, CrossDiskVerdict, judge, read_region
from txnstorm.transactions.actions import Fired
from txnstorm.transactions.plans import ImageRef, Pair, Plan, StampPair
from txnstorm.vm.machine import Machine
from txnstorm.workload.stamp_format import StampRegion


class NoOverlap(TxnstormError):
    """The storm did not write around the transaction: the test would prove nothing."""


@dataclass
class Timeline:
    """What happened when (host monotonic seconds since QEMU start)."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def mark(self, vm: Machine, what: str, **data: Any) -> None:
        self.events.append({"t": round(time.monotonic() - vm.launched_at, 3), "what": what, **data})
        vm.note(f"{what} {json.dumps(data, sort_keys=True)}" if data else what)

    def save(self, path: Path, write_samples: Sequence[dict[str, float]] = ()) -> None:
        """timeline.json: the story's marks and QEMU's write counters over time."""
        path.write_text(json.dumps({"events": self.events, "write_ops": list(write_samples)}, indent=1) + "\n")


VERIFY_WORKERS = os.cpu_count() or 1  # qemu-img checks side by side once QEMU has quit


@dataclass(frozen=True)
class Overlap:
    """Evidence that the storm wrote before and after the actions fired."""

    before: dict[str, int]
    after_actions: dict[str, int]
    later: dict[str, int]
    fio_running_after: bool

    def check(self, disks: Sequence[str]) -> None:
        idle = [d for d in disks if self.later.get(d, 0) <= self.after_actions.get(d, 0)]
        if idle or not self.fio_running_after:
            raise NoOverlap(
                f"storm did not overlap the actions: fio running after={self.fio_running_after}, "
                f"no writes after the actions on {idle} (counters {asdict(self)})"
            )


@dataclass(frozen=True)
class RoundRecord:
    round_no: int
    plan: Plan
    fired: Fired
    overlap: Overlap
    delay_s: float
    # A control round: at most how many stamp writes each writer completed while the separate commands
    # captured the two witnesses (from before the first of them was sent to after the second was
    # answered; a writer absent: not measured).
    writer_progress: dict[str, int] = field(default_factory=dict)
    # A control round of a plan with a gap_disk: the writes that disk completed between the first
    # command's answer and the last command's sending (None: not measured).
    gap_writes: int | None = None


def virtqueue_status(vm: Machine) -> dict[str, Any]:
    """x-query-virtio-queue-status of every disk's queues: ``inuse`` counts
    requests QEMU took and has not completed; ``last-avail-idx`` behind the
    guest's avail index means requests QEMU has not even taken.  A scsi disk's
    queues are its controller's (``scsi-io0/0`` control, ``/1`` event, ``/2``...
    requests), shared by the disks on it: listed once."""
    status: dict[str, Any] = {}
    for disk in vm.topology.disks:
        for queue in disk.device_virtqueues:
            key = f"{disk.controller or disk.name}/{queue}"
            if key in status:
                continue
            try:
                status[key] = vm.cmd("x-query-virtio-queue-status", path=disk.virtio_path, queue=queue)
            except TxnstormError as exc:
                status[key] = {"error": str(exc)}
    return status


@dataclass(frozen=True)
class Finding:
    """One oracle's verdict on one round."""

    round_no: int
    oracle: str
    ok: bool
    detail: str
    judged: bool = True  # False: the round could not tell (a writer too slow to make captures differ)

    def describe(self) -> str:
        state = "not judged" if not self.judged else "ok" if self.ok else "VIOLATION"
        return f"round {self.round_no}: {self.oracle}: {state}: {self.detail}"


def extracted(ref: ImageRef, scratch: Path) -> Path:
    """Where verification extracts internal snapshot ``ref`` to (a standalone qcow2)."""
    return scratch / f"{ref.path.stem}@{ref.snapshot}.qcow2"


def _materialize(qemu_img: QemuImg, ref: ImageRef, scratch: Path) -> Path:
    if not ref.snapshot:
        return ref.path
    out = extracted(ref, scratch)
    if not out.exists():
        qemu_img.extract_snapshot(ref.path, ref.fmt, ref.snapshot, out)
    return out


def stamp_finding(round_no: int, oracle: str, verdict: CrossDiskVerdict, progress: int | None) -> Finding:
    """A stamp oracle's verdict on a round; not judged when the captures agree and its writer
    completed fewer than ``WRITES_TO_DIFFER`` writes while the witnesses were captured
    (``progress``, measured in control rounds only): the captures could not have differed."""
    if verdict.consistent and progress is not None and progress < WRITES_TO_DIFFER:
        why = (f"; the writer completed at most {progress} stamp writes while the witnesses were captured (fewer "
               f"than {WRITES_TO_DIFFER}: the captures could not differ)")  # fmt: skip
        return Finding(round_no, oracle, True, verdict.describe() + why, judged=False)
    return Finding(round_no, oracle, verdict.consistent, verdict.describe())


def pair_finding(round_no: int, label: str, detail: str, identical: bool, gap: RoundRecord | None) -> Finding:
    """A pair oracle's verdict on a round; not judged when the captures agree and the pair could
    only differ through writes in an earlier control round's gap (``gap``: that round) that saw
    none: the bitmap control whose guest wrote nothing between the full backup and the bitmap."""
    if identical and gap is not None and gap.gap_writes == 0:
        why = (f"; round {gap.round_no}'s {gap.plan.gap_disk} completed no write between its separate commands "
               "(none could be missing)")  # fmt: skip
        return Finding(round_no, label, True, detail + why, judged=False)
    return Finding(round_no, label, identical, detail)


class ControlNotJudged(TxnstormError):
    """A negative control whose oracle could judge too few rounds (its writer too slow: a loaded
    host) to say anything: the suite's ERROR, neither a PASS nor a lost tooth."""


def check_control(findings: Sequence[Finding], oracle_prefix: str) -> str:
    """A negative control's verdict on one oracle: every round it could judge caught (a miss is an
    AssertionError, FAIL: the oracle is too weak).  A round it could not judge (a stamp writer that
    completed fewer than two writes while the witnesses were captured, a bitmap round whose disk
    completed none between its commands) is neither; fewer than half
    the rounds judged proves nothing (ControlNotJudged, ERROR).  Returns the tally."""
    mine = [f for f in findings if f.oracle.startswith(oracle_prefix)]
    if not mine:
        raise AssertionError(f"no {oracle_prefix!r} oracle ran: the control proves nothing")
    judged = [f for f in mine if f.judged]
    missed = [f.describe() for f in judged if f.ok]
    if missed:
        raise AssertionError(
            f"negative control: separate commands were NOT detected by {oracle_prefix!r} in "
            f"{len(missed)} of {len(judged)} judged rounds; the oracle is too weak:\n" + "\n".join(missed)
        )
    if len(judged) * 2 < len(mine):
        raise ControlNotJudged(
            f"negative control: {oracle_prefix!r} could judge only {len(judged)} of {len(mine)} rounds (caught all "
            f"{len(judged)}); in the others too few writes completed during the separate commands:\n"
            + "\n".join(f.describe() for f in mine if not f.judged)
        )
    return f"{oracle_prefix} caught {len(judged)} of {len(mine)} rounds ({len(mine) - len(judged)} not judged)"


def verify_rounds(
    qemu_img: QemuImg, records: Sequence[RoundRecord], scratch: Path, regions: dict[str, StampRegion] | None = None
) -> list[Finding]:
    """Run every oracle of every round on the captures (QEMU has exited:
    all images are closed and flushed).  ``regions``: one stamp region per
    stamp writer ("guest", "nbd"), each judged on every stamp pair.  The
    checks are ``qemu-img`` processes that read distinct files: they run side
    by side, one per core (internal snapshots are extracted first, each once);
    the findings keep the rounds' order."""
    by_round = {record.round_no: record for record in records}
    refs = [ref for r in records for p in [*r.plan.pairs, *r.plan.stamp_pairs] for ref in (p.a, p.b)]
    snapshots = list(dict.fromkeys(ref for ref in refs if ref.snapshot))

    def pair_check(record: RoundRecord, pair: Pair) -> Finding:
        a, b = _materialize(qemu_img, pair.a, scratch), _materialize(qemu_img, pair.b, scratch)
        result = compare_images(qemu_img, a, b, (pair.a.fmt, pair.b.fmt), force_share=False)
        detail = f"{pair.a.describe()} vs {pair.b.describe()}: " + (
            "identical" if result.identical else f"first difference at offset {result.first_difference}"
        )
        gap = by_round.get(pair.gap_round) if pair.gap_round is not None else None
        return pair_finding(record.round_no, pair.label, detail, result.identical, gap)

    def stamp_check(record: RoundRecord, stamp_pair: StampPair, writer: str, region: StampRegion) -> Finding:
        # An extracted internal snapshot is a qcow2; a plain capture keeps its format.
        images = [
            (_materialize(qemu_img, ref, scratch), "qcow2" if ref.snapshot else ref.fmt)
            for ref in (stamp_pair.a, stamp_pair.b)
        ]
        verdict = judge(*(read_region(qemu_img.binary, image, fmt, region) for image, fmt in images))
        oracle = f"cross-disk stamps/{writer} ({stamp_pair.label})"
        return stamp_finding(record.round_no, oracle, verdict, record.writer_progress.get(writer))

    checks: list[Callable[[], Finding]] = []
    for record in records:
        checks += [partial(pair_check, record, pair) for pair in record.plan.pairs]
        checks += [
            partial(stamp_check, record, stamp_pair, writer, region)
            for stamp_pair in record.plan.stamp_pairs
            for writer, region in (regions or {}).items()
        ]
    with ThreadPoolExecutor(max_workers=VERIFY_WORKERS) as pool:
        list(pool.map(lambda ref: _materialize(qemu_img, ref, scratch), snapshots))
        return list(pool.map(lambda check: check(), checks))
