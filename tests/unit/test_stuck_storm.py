"""A guest writer that does not end when told to (issue #22): the suite's ERROR when nothing is
held outside the guest's process (no request in the guest's block layer, none on QEMU's side), a
stall of QEMU (FAIL, or a listed issue's WARN) whenever anything points at QEMU."""

import types

import pytest
from test_stall import queue  # the quiet ring the stall tests build on

from txnstorm.errors import DeviceStalled, QemuFailure, StormStuckInGuest
from txnstorm.oracles import known_issues as ki
from txnstorm.oracles.stall import QueueView, StallEvidence
from txnstorm.scenario.guest_on_daemon import DaemonGuestWriters
from txnstorm.scenario.rounds import Timeline
from txnstorm.scenario.story import Storm
from txnstorm.scenario.writers import GuestWriters
from txnstorm.vm.backtrace import IDLE_MAIN_LOOP
from txnstorm.vm.topology import Disk, Topology
from txnstorm.workload.fio import WAITS_TITLE, StormHung
from txnstorm.workload.writer_waits import WRITER_WAITS, parse_writer_waits

# Recorded on 7.2.22 (scripts/storm-stop-repro --throttle 20 --stop split: fio's parent, then its
# job processes 0.2 s later): both jobs wait in io_getevents for 7 completions (min_nr 7, nr 7),
# their AIO rings empty (head == tail), nothing in flight on either disk.
RECORDED = f"""== requests in flight (read write) per disk
vda disk0 0 0
vdb disk1 0 0
== kernel stacks
== 124
read_events
== {WAITS_TITLE}
wait 124 208 0x7f08dbfec000 0x7 0x7 0x1ce27180 0x0 0x0 0x7ffc028363a8 0x4fb049
aio 124 00000000 0000007f 0000002c 0000002c a10a10a1
wait 123 208 0x7f08dbfee000 0x7 0x7 0x1ce27160 0x0 0x0 0x7ffc028363a8 0x4fb049
aio 123 00000000 0000007f 0000002c 0000002c a10a10a1
wait 121 230 0x0 0x0 0x7ffc02836750 0x0 0x0 0x0 0x7ffc02836710 0x545575
== processes
  121   120 S    fio --output-format=json
"""
HUNG_MESSAGE = "storm still running 60 s after it was told to end (requests that never complete?)"


def examined(*queues: QueueView, inflight=(0, 0), unstuck_by=None) -> StallEvidence:
    return StallEvidence(["disk0", "disk1"], list(queues), True, {"disk0": inflight, "disk1": (0, 0)}, "",
                         {"disk0": 5, "disk1": 7}, unstuck_by)  # fmt: skip


def hung(evidence: str = RECORDED, stall: StallEvidence | None = None) -> StormHung:
    failure = StormHung(HUNG_MESSAGE, evidence)
    failure.stall = stall
    return failure


class Notes:
    launched_at = 0.0
    NAME = "QEMU"

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def storm(writers: object | None = None) -> Storm:
    """A rounds engine with only what judging a stall needs (no QEMU, no guest)."""
    bare = object.__new__(Storm)
    bare.disks = ["disk0", "disk1"]
    bare.timeline = Timeline()
    bare.vm = Notes()
    if writers is None:
        writers = object.__new__(GuestWriters)
        writers.disks, writers.booted = ["disk0", "disk1"], None
    bare.writers = writers
    return bare


def test_where_each_writer_waits_is_read_from_the_recorded_evidence():
    waits = hung().writer_waits
    assert [(w.pid, w.syscall, w.min_nr, w.ready) for w in waits] == [
        (124, 208, 7, 0), (123, 208, 7, 0), (121, 230, None, None),
    ]  # fmt: skip
    assert waits[0].waits_for_more_than_can_come and not waits[2].waits_for_more_than_can_come
    assert waits[0].describe() == "process 124 waits in io_getevents for 7 completions, its AIO ring holds 0"
    assert parse_writer_waits("wait 9 running\naio 9 zz\n")[0].describe() == "process 9 running"
    assert hung("no such section").writer_waits == []


def test_the_recorded_hang_is_the_suites_error_not_a_fail_of_qemu():
    idle = examined(queue(), queue(queue="disk1/0"))
    assert idle.signature == "guest-idle"
    with pytest.raises(StormStuckInGuest) as stuck:
        storm().blame_the_guest_if_nothing_else(hung(stall=idle))
    assert not isinstance(stuck.value, QemuFailure), "an ERROR of the suite, never a FAIL of QEMU"
    text = str(stuck.value)
    assert text.startswith(HUNG_MESSAGE + ": nothing in flight in the guest's block layer (disk0 0, disk1 0)")
    assert "nor on QEMU's side (stall class: guest-idle" in text
    assert "process 124 waits in io_getevents for 7 completions, its AIO ring holds 0" in text
    assert text.endswith("(waits for completions that cannot come: nothing is in flight)")


@pytest.mark.parametrize(
    ("stall", "why"),
    [
        (examined(queue(avail_idx=104), inflight=(0, 4)), "requests the device never took"),
        (examined(queue(last_avail_idx=104, avail_idx=104, inuse=4), inflight=(0, 4)), "taken, never completed"),
        (examined(queue(used_idx=108, last_avail_idx=108, avail_idx=108, used_event=100)),
         "completions the guest was due to be told of (KI-7's class), even with nothing counted in flight"),
        (examined(queue(), inflight=(0, 3)), "the guest holds requests in flight"),
        (examined(queue(), inflight=None), "the guest did not say what it holds"),
        (examined(queue(error="ring not readable")), "a queue that could not be read"),
        (examined(queue(), unstuck_by="stop/cont"), "writes came back after stop/cont"),
        (None, "no view of QEMU's side (the examination failed)"),
    ],
)  # fmt: skip
def test_anything_that_points_at_qemu_keeps_the_stall(stall, why):
    storm().blame_the_guest_if_nothing_else(hung(stall=stall))  # returns: the StormHung stays the verdict


def test_ki7s_stall_still_warns_as_a_listed_issue():
    """The caller re-raises the StormHung: a DeviceStalled, FAIL, or KI-7's WARN on a version it lists."""
    seen = examined(queue(used_idx=6380, last_avail_idx=6380, avail_idx=6380, used_event=6372), inflight=None)
    failure = hung(stall=seen)
    storm().blame_the_guest_if_nothing_else(failure)
    assert isinstance(failure, DeviceStalled)
    listed = ki.listed_failure(failure.reason(), "7.2.22", ki.load())
    assert listed is not None and listed.matched.id == "KI-7" and listed.status == "WARN"


class InflightGuest:
    def __init__(self, said: str) -> None:
        self.said = said

    def run(self, command: str, timeout: float = 60.0):
        return types.SimpleNamespace(stdout=self.said, stderr="", status=0)


VHOST = Topology("vhost", (Disk("disk0", bus="vhost-user-blk", pci_slot=0x10),
                           Disk("disk1", bus="vhost-user-blk", pci_slot=0x11)))  # fmt: skip


def on_daemon(guest_said: str) -> Storm:
    writers = object.__new__(DaemonGuestWriters)
    writers.disks = ["disk0", "disk1"]
    writers.daemon = Notes()
    writers.daemon.NAME = "qemu-storage-daemon"
    writers.daemon.topology = VHOST
    writers.booted = types.SimpleNamespace(guest=InflightGuest(guest_said))
    return storm(writers)


IDLE_VHOST_GUEST = "vda pci-0000:00:10.0 0 0\nvdb pci-0000:00:11.0 0 0\n"


def test_a_guest_on_an_idle_daemon_with_nothing_in_flight_is_the_suites_error():
    """The vhost-user-blk shape of the issue: the daemon idle in its main loop, blk-mq empty."""
    failure = hung()
    failure.main_thread_sites = {"qemu-storage-daemon": IDLE_MAIN_LOOP}
    with pytest.raises(StormStuckInGuest, match=r"nor on QEMU's side \(qemu-storage-daemon answers QMP, main thread"):
        on_daemon(IDLE_VHOST_GUEST).blame_the_guest_if_nothing_else(failure)


@pytest.mark.parametrize(
    ("site", "guest_said"),
    [
        ("bdrv_drain_all_begin <- bdrv_drain_all <- qmp_transaction", IDLE_VHOST_GUEST),  # KI-11's hang
        (IDLE_MAIN_LOOP, "vda pci-0000:00:10.0 0 5\nvdb pci-0000:00:11.0 0 0\n"),  # KI-13: the export holds writes
        (None, IDLE_VHOST_GUEST),  # no backtrace: the daemon's side not seen
    ],
)  # fmt: skip
def test_a_daemon_that_holds_or_waits_keeps_the_stall(site, guest_said):
    failure = hung()
    failure.main_thread_sites = {"qemu-storage-daemon": site}
    on_daemon(guest_said).blame_the_guest_if_nothing_else(failure)


class DaemonGuest(InflightGuest):
    """A guest that answers the in-flight read and, separately, where its writers wait."""

    def __init__(self, inflight: str, waits: str) -> None:
        super().__init__(inflight)
        self.waits = waits

    def run(self, command: str, timeout: float = 60.0):
        said = self.waits if command == WRITER_WAITS else self.said
        return types.SimpleNamespace(stdout=said, stderr="", status=0)


MID_STORM = "storm wrote nothing to ['disk0'] within 30 s"


def test_a_mid_storm_stall_with_nothing_held_anywhere_is_the_suites_error_too():
    """The quick tier's vhost-user-blk main-loop control once stalled mid-storm with the daemon idle
    (2026-12-03, evidence of the guest's side not kept): with blk-mq empty it is the guest's, and
    where its writers wait is read from the guest then and there."""
    failure = DeviceStalled(MID_STORM)
    failure.main_thread_sites = {"qemu-storage-daemon": IDLE_MAIN_LOOP}
    guest = on_daemon("")
    waits = "wait 77 208 0x7f 0x7 0x7 0x1 0x0\n"
    guest.writers.booted = types.SimpleNamespace(guest=DaemonGuest(IDLE_VHOST_GUEST, waits))
    with pytest.raises(StormStuckInGuest) as stuck:
        guest.blame_the_guest_if_nothing_else(failure)
    assert str(stuck.value).startswith(MID_STORM + ": nothing in flight in the guest's block layer (disk0 0, disk1 0)")
    assert "process 77 waits in io_getevents for 7 completions, its AIO ring unread" in str(stuck.value)


def test_a_mid_storm_stall_with_writes_held_by_the_guest_still_matches_ki13(tmp_path):
    """The reason line names what the guest's blk-mq holds; with writes held, KI-13's WARN on 7.2.22."""
    failure = DeviceStalled(MID_STORM)
    held = "vda pci-0000:00:10.0 0 5\nvdb pci-0000:00:11.0 0 0\n"
    guest = on_daemon(held)
    guest.writers.booted = types.SimpleNamespace(guest=DaemonGuest(held, ""))
    guest.writers.fio = types.SimpleNamespace(process=types.SimpleNamespace(diagnose=lambda: "fio in io_getevents\n"))

    def keep_backtrace(stalled: DeviceStalled) -> None:  # what Machine.keep_backtrace says of an idle daemon
        stalled.main_thread_sites = {"qemu-storage-daemon": IDLE_MAIN_LOOP}
        stalled.add_detail("qemu-storage-daemon main thread in its main loop (idle); backtrace: qemu-backtrace.txt")

    guest.writers.daemon.keep_backtrace, guest.writers.daemon.logdir = keep_backtrace, tmp_path
    guest.writers.examine(failure, ["disk0"], guest.mark)
    guest.blame_the_guest_if_nothing_else(failure)  # returns: the stall stays the verdict
    assert failure.reason().endswith("(guest's blk-mq in flight: disk0 5, disk1 0)")
    assert (tmp_path / "guest-diagnosis.txt").read_text() == "fio in io_getevents\n"
    listed = ki.listed_failure(failure.reason(), "7.2.22", ki.load())
    assert listed is not None and listed.matched.id == "KI-13" and listed.status == "WARN"
