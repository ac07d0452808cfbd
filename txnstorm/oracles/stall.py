"""A stalled device, examined until it has a name.

When a virtio-blk device (or the virtio-scsi controller of a scsi disk)
stops completing the guest's requests while QEMU still answers QMP,
``examine`` keeps what a maintainer needs to tell the known kinds of stall
apart, before QEMU is killed:

* QEMU's view of every queue of the stalled disks (a scsi disk's are its
  controller's control queue, where the guest's error handler sends aborts
  and resets, and request queues, shared by every disk on it, named after
  the controller: ``scsi-io0/0``, ``scsi-io0/2``; the event queue always
  holds buffers QEMU has not taken, so it is left out);
  (``x-query-virtio-queue-status``: the next index it will pop, the
  requests it holds, the used index it published) and the split ring itself
  read from guest memory (HMP ``xp``: ``avail.idx``, the flags, and with
  ``VIRTIO_RING_F_EVENT_IDX`` the ``avail_event`` at which QEMU asked to be
  kicked and the ``used_event`` at which the guest asked for an interrupt);
* the guest's view: requests in flight per disk (sysfs answers even when a
  process is stuck in D state), and blk-mq's debugfs per hardware queue;
* what un-sticks it: first nothing (3 s more), then ``stop`` + ``cont``.

The class (``signature``) says which side holds the requests:

``ring-not-taken``
    the guest placed requests in the avail ring that QEMU never popped
    (``avail.idx != last_avail_idx``, nothing in flight in QEMU): a lost kick
    or notifications left disabled.  ``kick_expected`` says which: with
    event-idx the guest kicks only when its new ``avail.idx`` passes
    ``avail_event``; an ``avail_event`` inside [last_avail_idx, avail.idx)
    means a kick was due and got lost, one behind ``last_avail_idx`` means
    QEMU never asked for one.
``taken-not-completed``
    QEMU popped requests and holds them (``inuse > 0``): the block layer
    never completed them (a request parked in a drained section?).
``completed-not-seen``
    QEMU holds nothing and the ring is empty, but the guest still counts
    requests in flight: completions published but not taken by the guest
    (a lost interrupt; ``used_event`` vs ``used.idx`` says if one was due).
``guest-idle``
    nobody holds a request: what waits is not this device.

A writer that does not end when told to (the storm's fio, the stamp writer)
while nothing is held outside the guest's process, neither by the device
(QEMU's rings: ``guest-idle``; a daemon's vhost-user-blk export: its main
thread idle) nor by the guest's block layer (no request in flight on any
disk), is not a finding about QEMU: ``stuck_in_guest`` says what was seen
(where each writer process sleeps, and for fio's ``io_getevents`` how many
completions it waits for and how many its AIO ring holds) and the storm
ends as the suite's ERROR (``StormStuckInGuest``).  Anything that points at
QEMU keeps the FAIL: a request in flight in the guest, a queue QEMU holds
or did not take, a completion the guest was due to be told of, a ring
that could not be read, no view of QEMU's side at all, or writes that came
back by themselves or after ``stop``/``cont``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from txnstorm.deadline import Deadline
from txnstorm.errors import TxnstormError
from txnstorm.vm.topology import GUEST_DISK_LOOP, SCSI_CONTROL_QUEUE
from txnstorm.workload.writer_waits import WriterWait

if TYPE_CHECKING:
    from txnstorm.vm.machine import Machine

CLASSES = ("ring-not-taken", "taken-not-completed", "completed-not-seen", "guest-idle")
SIGNATURE_PREFIX = "stall class: "  # a stall known issue's signature: this prefix and one of CLASSES
VIRTIO_RING_F_EVENT_IDX = "VIRTIO_RING_F_EVENT_IDX"
SETTLE_S = 3.0  # "un-stuck by nothing": writes after this much more waiting
UNSTICK_WAIT_S = 10.0
_XP_RE = re.compile(r":\s*0x([0-9a-fA-F]+)\s*$")

GuestRun = Callable[[str], str]  # runs a shell command in the guest, returns its output


@dataclass
class QueueView:
    """One virtqueue as QEMU and the guest's ring memory show it."""

    queue: str  # "disk0/0"
    num: int
    last_avail_idx: int  # the next index QEMU will pop
    inuse: int  # popped by QEMU, not yet completed
    used_idx: int  # QEMU's used index
    signalled_used: int | None
    avail_idx: int | None  # the guest's avail.idx, from guest memory
    avail_flags: int | None
    used_flags: int | None
    avail_event: int | None  # event-idx: QEMU wants a kick when avail.idx passes this
    used_event: int | None  # event-idx: the guest wants an interrupt when used.idx passes this
    error: str | None = None

    @property
    def not_taken(self) -> int:
        """Requests in the avail ring that QEMU has not popped."""
        return 0 if self.avail_idx is None else (self.avail_idx - self.last_avail_idx) & 0xFFFF

    @property
    def kick_expected(self) -> bool | None:
        """With event-idx: was the guest due to kick for what QEMU did not take?"""
        if self.avail_event is None or not self.not_taken:
            return None
        return (self.avail_event - self.last_avail_idx) & 0xFFFF < self.not_taken

    @property
    def interrupt_expected(self) -> bool | None:
        """With event-idx: did the guest ask for an interrupt QEMU's used index passed?"""
        if self.used_event is None:
            return None
        return self.used_event != self.used_idx and (self.used_idx - self.used_event - 1) & 0xFFFF < 0x8000

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "not_taken": self.not_taken, "kick_expected": self.kick_expected,
                "interrupt_expected": self.interrupt_expected}  # fmt: skip


@dataclass
class StallEvidence:
    disks: list[str]
    queues: list[QueueView]
    event_idx: bool | None
    guest_inflight: dict[str, tuple[int, int] | None]  # disk -> (reads, writes) in flight in the guest
    guest_debugfs: str
    write_ops_before: dict[str, int]
    unstuck_by: str | None = None  # "waiting", "stop/cont" or None (nothing tried worked)
    write_ops_after: dict[str, dict[str, int]] = field(default_factory=dict)
    controllers: list[str] = field(default_factory=list)  # the virtio-scsi controllers of stalled scsi disks

    def _mine(self, q: QueueView) -> bool:
        """A queue of a stalled disk (its own, or its scsi controller's)."""
        return q.queue.split("/")[0] in (*self.disks, *self.controllers)

    @property
    def signature(self) -> str:
        mine = [q for q in self.queues if self._mine(q) and q.error is None]
        if any(q.not_taken and not q.inuse for q in mine):
            return "ring-not-taken"
        if any(q.inuse for q in mine):
            return "taken-not-completed"
        # The guest re-arms used_event to what it consumed; behind QEMU's used index, with nothing
        # else outstanding, the guest has not taken completions QEMU published.
        if any(q.interrupt_expected for q in mine):
            return "completed-not-seen"
        if any((self.guest_inflight.get(d) or (0, 0)) != (0, 0) for d in self.disks):
            return "completed-not-seen"
        return "guest-idle"

    def describe(self) -> str:
        """One line for the verdict: the class, who holds what, what un-stuck it."""
        parts = []
        for q in self.queues:
            if not self._mine(q):
                continue
            if q.error:
                parts.append(f"{q.queue}: {q.error}")
                continue
            text = f"{q.queue}: avail.idx {q.avail_idx} last_avail {q.last_avail_idx} inuse {q.inuse} used {q.used_idx}"
            if q.kick_expected is not None:
                text += ", kick was due" if q.kick_expected else f", no kick asked (avail_event {q.avail_event})"
            if q.interrupt_expected:
                text += f", guest consumed to used_event {q.used_event}: interrupt was due"
            parts.append(text)
        inflight = ", ".join(f"{d} {v[1] if v else '?'}" for d, v in self.guest_inflight.items())
        how = {"waiting": "by itself", "stop/cont": "by stop/cont", None: "not by stop/cont"}[self.unstuck_by]
        return (f"{SIGNATURE_PREFIX}{self.signature} ({'; '.join(parts)}; guest writes in flight: {inflight}); "
                f"un-stuck {how}")  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "summary": self.describe(),
            "disks": self.disks,
            "controllers": self.controllers,
            "event_idx": self.event_idx,
            "queues": [q.as_dict() for q in self.queues],
            "guest_inflight": self.guest_inflight,
            "write_ops_before": self.write_ops_before,
            "unstuck_by": self.unstuck_by,
            "write_ops_after": self.write_ops_after,
            "guest_debugfs": self.guest_debugfs,
        }


# -- QEMU's side -------------------------------------------------------------
def _xp16(vm: Machine, address: int) -> int:
    out = vm.cmd("human-monitor-command", **{"command-line": f"xp /1hx {address:#x}"})
    match = _XP_RE.search(out.strip())
    if not match:
        raise TxnstormError(f"xp {address:#x}: unexpected answer {out!r}")
    return int(match.group(1), 16)


def _event_idx(vm: Machine, path: str) -> bool | None:
    try:
        status = vm.cmd("x-query-virtio-status", path=path)
    except TxnstormError:
        return None
    features = status.get("guest-features", {}).get("transports", [])
    return VIRTIO_RING_F_EVENT_IDX in " ".join(str(f) for f in features)


def queue_view(vm: Machine, path: str, name: str, queue: int) -> QueueView:
    """QEMU's state of one split virtqueue and the ring as the guest left it."""
    s = vm.cmd("x-query-virtio-queue-status", path=path, queue=queue)
    num, avail, used = s["vring-num"], s["vring-avail"], s["vring-used"]
    ring = {"avail_idx": None, "avail_flags": None, "used_flags": None, "avail_event": None, "used_event": None}
    error = None
    try:
        ring = {
            "avail_flags": _xp16(vm, avail),
            "avail_idx": _xp16(vm, avail + 2),
            "used_flags": _xp16(vm, used),
            "used_event": _xp16(vm, avail + 4 + 2 * num),
            "avail_event": _xp16(vm, used + 4 + 8 * num),
        }
    except TxnstormError as exc:
        error = f"ring not readable: {exc}"
    return QueueView(
        queue=f"{name}/{queue}", num=num, last_avail_idx=s.get("last-avail-idx", 0), inuse=s["inuse"],
        used_idx=s["used-idx"], signalled_used=s.get("signalled-used"), error=error, **ring,
    )  # fmt: skip


def queue_views(vm: Machine, disks: Sequence[str]) -> tuple[list[QueueView], bool | None]:
    """The queues of ``disks``: a virtio-blk disk's own (``disk0/0``), a scsi disk's controller's
    control and request queues (``scsi-io0/0``, ``scsi-io0/2``), each controller once."""
    views, event_idx, seen = [], None, set()
    for disk in vm.topology.disks:
        if disk.name not in disks:
            continue
        owner = disk.controller or disk.name
        if owner in seen:
            continue
        seen.add(owner)
        event_idx = _event_idx(vm, disk.virtio_path) if event_idx is None else event_idx
        for queue in (SCSI_CONTROL_QUEUE, *disk.virtqueues) if disk.controller else disk.virtqueues:
            try:
                views.append(queue_view(vm, disk.virtio_path, owner, queue))
            except TxnstormError as exc:
                views.append(QueueView(f"{owner}/{queue}", 0, 0, 0, 0, None, None, None, None, None, None,
                                       error=str(exc)))  # fmt: skip
    return views, event_idx


# -- the guest's side --------------------------------------------------------
MOUNT_DEBUGFS = "grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs none /sys/kernel/debug 2>/dev/null;"
# Requests blk-mq holds in flight per disk, by serial, from debugfs: on a stalled guest it answered
# where /sys/block/*/inflight did not within 10 s (measured on 10.0.13 and 10.2.2).
GUEST_INFLIGHT = MOUNT_DEBUGFS + (
    f" {GUEST_DISK_LOOP} busy=$(cat /sys/kernel/debug/block/$n/hctx*/busy 2>/dev/null);"
    ' echo $n $s $(echo "$busy" | grep -c op=READ) $(echo "$busy" | grep -c op=WRITE); done'
)
GUEST_DEBUGFS = (
    MOUNT_DEBUGFS + " for h in /sys/kernel/debug/block/vd*/hctx* /sys/kernel/debug/block/sd*/hctx*; do"
    ' for f in state busy dispatch tags; do [ -r $h/$f ] && echo "== $h/$f" && head -c 2000 $h/$f; done; done;'
    # a request SCSI requeued (device busy or blocked) holds no tag: it waits in the queue's requeue list
    ' for q in /sys/kernel/debug/block/*/requeue_list; do [ -s $q ] && echo "== $q" && head -c 2000 $q; done;'
    " for d in /sys/block/sd*/device; do [ -e $d/state ] &&"
    ' echo "== $d: state $(cat $d/state) busy $(cat $d/device_busy) blocked $(cat $d/device_blocked)"; done; true'
)


def parse_inflight(text: str) -> dict[str, tuple[int, int]]:
    """'vdb disk0 0 3' (or 'sda disk0 0 3') lines -> {'disk0': (0, 3)} (serial: reads, writes blk-mq holds)."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2].isdigit() and fields[3].isdigit():
            out[fields[1]] = (int(fields[2]), int(fields[3]))
    return out


def _guest(run: GuestRun | None, command: str, attempts: int = 2) -> str | None:
    """The guest's answer; tried twice: on a stalled guest the first command
    after the stall went unanswered for 10 s every time, the next one answered
    (10.0.13, 10.2.2), cause not known."""
    if run is None:
        return None
    said = ""
    for _ in range(attempts):
        try:
            return run(command)
        except TxnstormError as exc:
            said += f"(no answer: {exc})\n"
    return said


# -- what un-sticks it ---------------------------------------------------------
def _moved(vm: Machine, disks: Sequence[str], before: dict[str, int], within: float) -> dict[str, int] | None:
    deadline = Deadline(within)
    while deadline.sleep(0.25):
        now = vm.write_ops()
        if any(now.get(d, 0) > before.get(d, 0) for d in disks):
            return now
    return None


def examine(vm: Machine, disks: Sequence[str], guest: GuestRun | None, logdir: Path) -> StallEvidence:
    """Keep the evidence of a stall of ``disks`` in ``stall.json`` (and
    QEMU's raw queue status in ``virtqueues.json``), then try what
    un-sticks it.  QEMU must still answer QMP."""
    disks = list(disks)
    before = vm.write_ops()
    views, event_idx = queue_views(vm, disks)
    inflight_text = _guest(guest, GUEST_INFLIGHT)
    evidence = StallEvidence(
        disks=disks, queues=views, event_idx=event_idx,
        controllers=sorted({d.controller for d in vm.topology.disks if d.name in disks and d.controller}),
        guest_inflight={d: parse_inflight(inflight_text or "").get(d) for d in disks},
        guest_debugfs=f"== in flight (blk-mq)\n{inflight_text}\n{_guest(guest, GUEST_DEBUGFS) or ''}",
        write_ops_before=before,
    )  # fmt: skip
    settled = _moved(vm, disks, before, SETTLE_S)
    if settled is not None:
        evidence.unstuck_by, evidence.write_ops_after["waiting"] = "waiting", settled
    else:
        vm.cmd("stop")
        vm.note("stall probe: stop")
        vm.cmd("cont")
        vm.note("stall probe: cont")
        resumed = _moved(vm, disks, before, UNSTICK_WAIT_S)
        if resumed is not None:
            evidence.unstuck_by, evidence.write_ops_after["stop/cont"] = "stop/cont", resumed
    (logdir / "stall.json").write_text(json.dumps(evidence.as_dict(), indent=1) + "\n")
    return evidence


def nothing_held_by_qemu(evidence: StallEvidence | None) -> str | None:
    """What QEMU's queues showed, if they held nothing of the stalled disks (``guest-idle``, every
    queue read, nothing un-stuck by waiting or stop/cont); None when anything points at QEMU."""
    if evidence is None or evidence.signature != "guest-idle" or evidence.unstuck_by is not None:
        return None
    mine = [q for q in evidence.queues if evidence._mine(q)]
    if not mine or any(q.error for q in mine):
        return None
    return evidence.describe()


def stuck_in_guest(
    inflight: dict[str, tuple[int, int] | None], qemu_side: str | None, waits: Sequence[WriterWait]
) -> str | None:
    """Why a writer that did not end is the guest's, not QEMU's: nothing in flight in the guest's
    block layer on any disk (``inflight``, every disk known) and ``qemu_side`` (what QEMU's side
    showed holding nothing; None: not seen, or it holds something).  None: it stays a stall."""
    if qemu_side is None or not inflight or any(v != (0, 0) for v in inflight.values()):
        return None
    idle = ", ".join(f"{d} 0" for d in inflight)
    said = "; ".join(w.describe() for w in waits) or "where the writers wait not read"
    if any(w.waits_for_more_than_can_come for w in waits):
        said += " (waits for completions that cannot come: nothing is in flight)"
    return f"nothing in flight in the guest's block layer ({idle}) nor on QEMU's side ({qemu_side}); {said}"
