"""What writes while the rounds fire, as the rounds engine (``story.Storm``) sees it.

``Writers`` is the protocol: start (the constructor), stop, is-running, write counts (completed
writes per disk: the overlap proof and the stall check), the stamp writers' progress (a control
round is judged by it) and examine-a-stall (evidence kept while QEMU still runs, and what says
whose stall it is).  Three implementations:

* ``GuestWriters`` (here): fio on every disk of a booted guest and the guest stamp writer on the
  witnesses, optionally the host NBD stamp writer through the guest's QEMU's NBD server; counted
  by that QEMU (``query-blockstats``);
* ``daemon_storm.NbdWriters``: host NBD clients on every export of a qemu-storage-daemon and the
  NBD stamp writer; counted by the clients;
* ``guest_on_daemon.DaemonGuestWriters``: the guest's writers on a daemon's vhost-user-blk
  exports; counted by the guest (the daemon keeps no statistics for them).

``mark(event, **data)`` puts an event on the storm's timeline.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from txnstorm.errors import DeviceStalled, TxnstormError
from txnstorm.oracles import stall
from txnstorm.scenario.rounds import virtqueue_status
from txnstorm.vm.boot import Booted
from txnstorm.vm.topology import Topology
from txnstorm.workload import nbd
from txnstorm.workload.fio import RunningStamps, StormHung
from txnstorm.workload.guest_storm import finish_storm, guest_devices, start_storm
from txnstorm.workload.nbd_stamps import NbdStampWriter
from txnstorm.workload.stamp_format import StampRegion
from txnstorm.workload.writer_waits import WRITER_WAITS, WriterWait, parse_writer_waits

Mark = Callable[..., None]


@dataclass(frozen=True)
class Witnesses:
    """The two stamp disks (first and last) and each stamp writer's region."""

    disks: tuple[str, str]
    regions: dict[str, StampRegion]  # writer ("guest", "nbd") -> its region on both disks

    @classmethod
    def of(cls, topology: Topology, nbd_writer: bool) -> Witnesses | None:
        """The guest writer always; with ``nbd_writer`` also the host NBD one."""
        names = [d.name for d in topology.disks]
        if len(names) < 2:
            return None
        end = StampRegion.at_end(min(d.size_bytes for d in topology.disks))
        regions = {"guest": end}
        if nbd_writer:
            regions["nbd"] = StampRegion(end.offset - end.size, end.slots)
        return cls((names[0], names[-1]), regions)

    @property
    def fio_size(self) -> int:
        """fio keeps below every stamp region."""
        return min(r.offset for r in self.regions.values())


class Writers(Protocol):
    """What the rounds engine asks of whatever writes during a storm."""

    PAUSE_NOTED_S: float  # a longer wait for every disk to write again after a round is marked in the timeline

    def started(self) -> dict[str, object]: ...  # what the timeline's "storm started" says

    def write_ops(self) -> dict[str, int]: ...  # completed writes per disk

    def is_running(self) -> bool: ...  # every writer still writes (the overlap proof)

    def stamp_writes(self) -> dict[str, int]: ...  # stamp writes completed so far per stamp writer

    def stop(self, mark: Mark) -> None: ...  # StormHung: a writer did not end

    def examine(self, stalled: DeviceStalled, disks: Sequence[str], mark: Mark) -> None: ...

    def qemu_side_idle(self, stalled: DeviceStalled) -> str | None: ...  # QEMU's side held nothing

    def guest_inflight(self, stalled: DeviceStalled) -> dict[str, tuple[int, int] | None]: ...

    def writer_waits(self, stalled: DeviceStalled) -> list[WriterWait]: ...


class GuestWriters:
    """fio on every disk of a booted guest, the guest stamp writer on the witnesses, and with an
    ``nbd`` region the host NBD stamp writer through the guest's QEMU; counted by that QEMU."""

    PAUSE_NOTED_S = 0.0

    def __init__(self, booted: Booted, witnesses: Witnesses | None, after_qemu: contextlib.ExitStack) -> None:
        self.booted, self.vm = booted, booted.vm
        self.disks = [d.name for d in booted.vm.topology.disks]
        self.witnesses = witnesses
        self.fio = start_storm(booted, self.disks, size=witnesses.fio_size if witnesses else None)
        self.guest_stamps: RunningStamps | None = None
        self.nbd_stamps: NbdStampWriter | None = None
        if witnesses:
            a, b = (guest_devices(booted, witnesses.disks)[w] for w in witnesses.disks)
            region = witnesses.regions["guest"]
            self.guest_stamps = RunningStamps(booted.guest, a, b, region.offset, region.slots)
            if "nbd" in witnesses.regions:
                self.nbd_stamps = self._start_nbd_stamps(witnesses, after_qemu)

    def _start_nbd_stamps(self, witnesses: Witnesses, after_qemu: contextlib.ExitStack) -> NbdStampWriter:
        nbd.start_server(self.vm)
        uris = [nbd.export(self.vm, self.vm.root_node(w), f"stamps-{w}", writable=True) for w in witnesses.disks]
        writer = NbdStampWriter(*uris, witnesses.regions["nbd"], self.vm.logdir, keep_open=True)
        after_qemu.callback(writer.close)  # NBD clients close only after QEMU quit (KI-1)
        return writer.start()

    def started(self) -> dict[str, object]:
        w = self.witnesses
        return {"witnesses": w.disks if w else None, "stamp_writers": sorted(w.regions) if w else []}

    def write_ops(self) -> dict[str, int]:
        return self.vm.write_ops()

    def is_running(self) -> bool:
        return self.fio.is_running()

    def stamp_writes(self) -> dict[str, int]:
        """The guest stamp writer's completed writes (as the guest tells them)."""
        if self.guest_stamps is None:
            return {}
        done = self.guest_stamps.completed_writes()
        return {} if done is None else {"guest": done}

    def stop(self, mark: Mark) -> None:
        """The stamp writers, then fio (its result lands in the log dir); StormHung if one does not end."""
        if self.guest_stamps:
            mark("guest stamp writer stopped", generations=self.guest_stamps.stop())
        if self.nbd_stamps:
            mark("NBD stamp writer stopped", generations=self.nbd_stamps.stop())
        result = finish_storm(self.fio, self.vm.logdir, timeout=60)
        mark("storm finished", write_ios={n: j.write_ios for n, j in result.jobs.items()})

    def examine(self, stalled: DeviceStalled, disks: Sequence[str], mark: Mark) -> None:
        """Name a stall before QEMU goes: both sides' views of the queues (``stall.json``,
        ``virtqueues.json``) and what un-sticks it."""
        mark("device stalled: examining", disks=list(disks))
        (self.vm.logdir / "virtqueues.json").write_text(json.dumps(virtqueue_status(self.vm), indent=1) + "\n")

        def in_guest(command: str) -> str:
            out = self.booted.guest.run(command, timeout=10)
            return out.stdout + out.stderr

        try:
            stalled.stall = stall.examine(self.vm, disks, in_guest, self.vm.logdir)
        except TxnstormError as exc:  # the stall stays the verdict (a FAIL without a class), not the probe
            mark("device stalled: examination failed", error=str(exc))
            return
        mark("device stalled: examined", signature=stalled.stall.signature, unstuck_by=stalled.stall.unstuck_by)

    def qemu_side_idle(self, stalled: DeviceStalled) -> str | None:
        """What QEMU's side showed of the stalled disks, if it held nothing (its queues: ``guest-idle``)."""
        return stall.nothing_held_by_qemu(stalled.stall)

    def guest_inflight(self, stalled: DeviceStalled) -> dict[str, tuple[int, int] | None]:
        """The requests the guest's blk-mq held per disk when the stall was examined."""
        held = stalled.stall.guest_inflight if stalled.stall is not None else {}
        return {d: held.get(d) for d in self.disks}

    def writer_waits(self, stalled: DeviceStalled) -> list[WriterWait]:
        """Where the guest's writers sleep: kept with a storm that did not end, else read now."""
        if isinstance(stalled, StormHung):
            return stalled.writer_waits
        return parse_writer_waits(self.booted.guest.run(WRITER_WAITS, timeout=10).stdout)

