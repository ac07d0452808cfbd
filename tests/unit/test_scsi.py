"""virtio-scsi disks: scsi-hd on a virtio-scsi-pci controller per iothread, found by
serial in the guest, their controller's request queues examined on a stall."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_stall import queue  # the quiet ring both files build their stalls on

from txnstorm.errors import TxnstormError
from txnstorm.oracles import stall
from txnstorm.oracles.stall import QueueView, StallEvidence, parse_inflight
from txnstorm.scenario import rounds
from txnstorm.vm.caps import Capabilities, needs_of
from txnstorm.vm.cmdline import BootFiles, LaunchSpec, build_args, device_arg
from txnstorm.vm.ssh import GuestSession
from txnstorm.vm.topology import GUEST_DISK_LOOP, TOPOLOGIES, Disk, Topology
from txnstorm.workload import guest_storm


def args_of(topology: Topology, tmp_path: Path) -> list[str]:
    spec = LaunchSpec(
        accel="tcg", boot=BootFiles(tmp_path / "k", tmp_path / "i", ""), qmp_socket=tmp_path / "q",
        console_log=tmp_path / "c", ssh_port=2222, images={d.name: tmp_path / d.name for d in topology.disks},
    )  # fmt: skip
    return build_args(Path("qemu"), topology, spec)


def devices(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == "-device"][1:]  # [0] is the NIC


def test_scsi_disks_share_one_controller_on_their_iothread(tmp_path):
    args = args_of(TOPOLOGIES["scsi-two-disks-one-iothread"], tmp_path)
    assert devices(args) == [
        "virtio-scsi-pci,id=scsi-io0,iothread=io0,num_queues=1",
        "scsi-hd,id=disk0-dev,bus=scsi-io0.0,channel=0,scsi-id=0,lun=0,drive=disk0,serial=disk0",
        "scsi-hd,id=disk1-dev,bus=scsi-io0.0,channel=0,scsi-id=1,lun=0,drive=disk1,serial=disk1",
    ]
    assert [a for i, a in enumerate(args) if i and args[i - 1] == "-object"] == ["iothread,id=io0"]
    # the nodes keep the naming convention: QMP actions, NBD, stamps and compare work unchanged
    nodes = [json.loads(args[i + 1])["node-name"] for i, a in enumerate(args) if a == "-blockdev"]
    assert nodes == ["disk0-file", "disk0", "disk1-file", "disk1"]


def test_the_controller_comes_before_its_disks(tmp_path):
    args = args_of(TOPOLOGIES["scsi-two-disks-one-iothread"], tmp_path)
    assert args.index("virtio-scsi-pci,id=scsi-io0,iothread=io0,num_queues=1") < args.index("-blockdev")


def test_scsi_beside_virtio_blk(tmp_path):
    topology = TOPOLOGIES["scsi-beside-blk"]
    assert topology.iothreads == ["io0", "io1"]
    assert devices(args_of(topology, tmp_path)) == [
        "virtio-scsi-pci,id=scsi-io0,iothread=io0,num_queues=1",
        "scsi-hd,id=disk0-dev,bus=scsi-io0.0,channel=0,scsi-id=0,lun=0,drive=disk0,serial=disk0",
        "virtio-blk-pci,id=disk1-dev,drive=disk1,serial=disk1,iothread=io1",
    ]


def test_one_controller_per_iothread_and_one_for_the_main_loop(tmp_path):
    topology = Topology(
        "t",
        (Disk("a", bus="scsi", iothread="io1"), Disk("b", bus="scsi", iothread=None),
         Disk("c", bus="scsi", iothread="io1", share_rw=True)),
    )  # fmt: skip
    assert list(topology.scsi_controllers) == ["scsi-io1", "scsi-main"]
    assert devices(args_of(topology, tmp_path)) == [
        "virtio-scsi-pci,id=scsi-io1,iothread=io1,num_queues=1",
        "virtio-scsi-pci,id=scsi-main,num_queues=1",
        "scsi-hd,id=a-dev,bus=scsi-io1.0,channel=0,scsi-id=0,lun=0,drive=a,serial=a",
        "scsi-hd,id=b-dev,bus=scsi-main.0,channel=0,scsi-id=0,lun=0,drive=b,serial=b",
        "scsi-hd,id=c-dev,bus=scsi-io1.0,channel=0,scsi-id=1,lun=0,drive=c,serial=c,share-rw=on",
    ]


def test_a_scsi_disk_is_reached_through_its_controllers_request_queues():
    scsi, blk = Disk("disk0", bus="scsi", num_queues=2), Disk("disk1")
    assert scsi.controller == "scsi-io0" and blk.controller is None
    assert scsi.virtio_path == "/machine/peripheral/scsi-io0/virtio-backend"
    assert blk.virtio_path == "/machine/peripheral/disk1-dev/virtio-backend"
    assert scsi.virtqueues == (2, 3)  # 0 control, 1 event
    assert scsi.device_virtqueues == (0, 1, 2, 3)
    assert blk.virtqueues == blk.device_virtqueues == (0,)
    assert scsi.qdev == "disk0-dev" and scsi.serial == "disk0"  # the naming convention holds


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Disk("d", bus="ide"), "bus must be one of"),
        (lambda: Disk("d", bus="scsi", num_queues=2, vq_mapping=("io0", "io1")), "vq_mapping needs iothread=None"),
        (lambda: Topology("t", (Disk("a", bus="scsi", iothread=None, num_queues=2, vq_mapping=("io0", "io1")),
                                Disk("b", bus="scsi", iothread=None, num_queues=3, vq_mapping=("io0", "io1")))),
         "must agree on num_queues"),
        (lambda: Disk("d", bus="scsi", num_queues=0), "num_queues must be at least 1"),
        (lambda: Topology("t", (Disk("a", bus="scsi"), Disk("b", bus="scsi", num_queues=2))),
         "must agree on num_queues"),
    ],
)  # fmt: skip
def test_bad_scsi_combinations_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_disks_on_different_controllers_may_differ_in_queues():
    Topology("t", (Disk("a", bus="scsi", iothread="io0"), Disk("b", bus="scsi", iothread="io1", num_queues=2)))


def test_device_arg_of_a_scsi_disk_names_its_target():
    arg = device_arg(Disk("d", bus="scsi"), scsi_id=3)
    assert arg.startswith("scsi-hd,id=d-dev,bus=scsi-io0.0,channel=0,scsi-id=3,")


def test_scsi_vq_mapping_spreads_the_controllers_request_queues(tmp_path):
    topology = TOPOLOGIES["scsi-vq-mapping"]
    assert topology.iothreads == ["io0", "io1"] and list(topology.scsi_controllers) == ["scsi-io0-io1"]
    controller, *disks = devices(args_of(topology, tmp_path))
    assert json.loads(controller) == {  # a list property: JSON -device syntax
        "driver": "virtio-scsi-pci", "id": "scsi-io0-io1", "num_queues": 2,
        "iothread-vq-mapping": [{"iothread": "io0"}, {"iothread": "io1"}],
    }  # fmt: skip
    # QEMU creates JSON -devices after the key=value ones: the disks must follow their controller
    assert json.loads(disks[1]) == {
        "driver": "scsi-hd", "id": "disk1-dev", "bus": "scsi-io0-io1.0", "channel": 0, "scsi-id": 1, "lun": 0,
        "drive": "disk1", "serial": "disk1",
    }  # fmt: skip
    assert topology.disks[0].virtqueues == (2, 3)


def test_a_shape_names_what_it_needs_of_qemu():
    assert needs_of(TOPOLOGIES["scsi-vq-mapping"]) == {
        "aio": ["threads"], "devices": ["virtio-scsi-pci", "scsi-hd"],
        "props": {"virtio-scsi-pci": ["iothread-vq-mapping"]},
    }  # fmt: skip
    assert needs_of(TOPOLOGIES["vq-mapping"])["props"] == {"virtio-blk-pci": ["iothread-vq-mapping"]}
    assert needs_of(TOPOLOGIES["scsi-beside-blk"])["props"] == {}
    caps = Capabilities("7.2.22", frozenset(), frozenset(), devices=frozenset({"virtio-scsi-pci", "scsi-hd"}),
                        device_props={"virtio-scsi-pci": frozenset({"iothread", "num_queues"})})  # fmt: skip
    assert caps.missing(props=needs_of(TOPOLOGIES["scsi-vq-mapping"])["props"]) == [
        "virtio-scsi-pci property iothread-vq-mapping"
    ]


def test_a_qemu_without_virtio_scsi_names_the_missing_devices():
    caps = Capabilities("7.2.0", frozenset(), frozenset(), devices=frozenset({"virtio-blk-pci"}))
    assert caps.missing(devices=("virtio-scsi-pci", "scsi-hd")) == ["device virtio-scsi-pci", "device scsi-hd"]
    both = Capabilities("7.2.0", frozenset(), frozenset(), devices=frozenset({"virtio-scsi-pci", "scsi-hd"}))
    assert both.missing(devices=("virtio-scsi-pci", "scsi-hd")) == []


# -- the guest's side ----------------------------------------------------------------
def fake_sysfs(root: Path) -> None:
    vda = root / "vda"
    vda.mkdir(parents=True)
    (vda / "serial").write_text("disk1\n")
    (vda / "inflight").write_text("       0        2\n")
    sda = root / "sda" / "device"
    sda.mkdir(parents=True)
    (sda / "vpd_pg80").write_bytes(b"\x00\x80\x00\x05disk0")  # as read on 7.2 and 10.2.2
    (root / "sda" / "inflight").write_text("       0        3\n")
    (root / "sdb" / "device").mkdir(parents=True)  # a scsi disk without a serial: left out


def test_the_guest_finds_virtio_blk_and_scsi_disks_by_serial(tmp_path):
    fake_sysfs(tmp_path)
    script = GUEST_DISK_LOOP.replace("/sys/block", str(tmp_path)) + ' [ -n "$s" ] && echo $n $s; done; true'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert sorted(out.split("\n")) == ["", "sda disk0", "vda disk1"]


def test_disks_by_serial_maps_serials_to_device_nodes():
    session = GuestSession.__new__(GuestSession)
    answer = SimpleNamespace(check=lambda: SimpleNamespace(stdout="sda disk0\nvda disk1\n"))
    session.run = lambda command, **_: answer  # type: ignore[method-assign]
    assert session.disks_by_serial() == {"disk0": "/dev/sda", "disk1": "/dev/vda"}


def test_disks_that_show_up_late_are_waited_for(monkeypatch):
    monkeypatch.setattr(guest_storm.time, "sleep", lambda s: None)
    answers = iter([{"disk1": "/dev/vda"}, {"disk1": "/dev/vda", "disk0": "/dev/sda"}])
    vm = SimpleNamespace(topology=TOPOLOGIES["scsi-beside-blk"])
    booted = SimpleNamespace(vm=vm, guest=SimpleNamespace(disks_by_serial=lambda: next(answers)))
    assert guest_storm.guest_devices(booted, ["disk0", "disk1"]) == {"disk0": "/dev/sda", "disk1": "/dev/vda"}
    never = SimpleNamespace(vm=vm, guest=SimpleNamespace(disks_by_serial=lambda: {"disk1": "/dev/vda"}))
    with pytest.raises(TxnstormError, match=r"no disk with serial \['disk0'\]"):
        guest_storm.guest_devices(never, ["disk0", "disk1"], timeout=0)


def test_the_guest_inflight_probe_covers_scsi_disks(tmp_path):
    assert "/sys/block/sd*" in stall.GUEST_INFLIGHT and "/sys/kernel/debug/block/sd*" in stall.GUEST_DEBUGFS
    assert parse_inflight("sda disk0 0 3\nvdb disk1 0 0\n") == {"disk0": (0, 3), "disk1": (0, 0)}


# -- QEMU's side of a stall ------------------------------------------------------------
class FakeVm:
    """Answers x-query-virtio-* for a topology; records what was asked."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.asked: list[tuple[str, int]] = []

    def cmd(self, name: str, **args: object) -> object:
        if name == "x-query-virtio-status":
            return {"guest-features": {"transports": ["VIRTIO_RING_F_EVENT_IDX: ..."]}}
        if name == "x-query-virtio-queue-status":
            self.asked.append((str(args["path"]), int(args["queue"])))  # type: ignore[call-overload]
            return {"vring-num": 128, "vring-avail": 0x1000, "vring-used": 0x2000, "last-avail-idx": 7,
                    "inuse": 2, "used-idx": 5, "signalled-used": 5}  # fmt: skip
        if name == "human-monitor-command":
            return "0000000000001000: 0x0007"
        raise AssertionError(name)


def test_a_stalled_scsi_disk_is_examined_on_its_controllers_request_queue():
    vm = FakeVm(TOPOLOGIES["scsi-beside-blk"])
    views, event_idx = stall.queue_views(vm, ["disk0", "disk1"])  # type: ignore[arg-type]
    assert [v.queue for v in views] == ["scsi-io0/0", "scsi-io0/2", "disk1/0"]  # control, request; no event
    assert vm.asked == [("/machine/peripheral/scsi-io0/virtio-backend", 0),
                        ("/machine/peripheral/scsi-io0/virtio-backend", 2),
                        ("/machine/peripheral/disk1-dev/virtio-backend", 0)]  # fmt: skip
    assert event_idx is True


def test_two_scsi_disks_on_one_controller_examine_it_once():
    vm = FakeVm(TOPOLOGIES["scsi-two-disks-one-iothread"])
    views, _ = stall.queue_views(vm, ["disk0", "disk1"])  # type: ignore[arg-type]
    assert [v.queue for v in views] == ["scsi-io0/0", "scsi-io0/2"]
    assert list(rounds.virtqueue_status(vm)) == ["scsi-io0/0", "scsi-io0/1", "scsi-io0/2"]  # type: ignore[arg-type]


def controller_queue(**overrides: object) -> QueueView:
    """test_stall's quiet queue, as a scsi controller's first request queue."""
    return queue(**{"queue": "scsi-io0/2", "num": 128, **overrides})


def test_the_controllers_queue_classes_a_scsi_stall():
    held = controller_queue(last_avail_idx=104, avail_idx=104, inuse=4)
    mine = StallEvidence(["disk0"], [held], True, {"disk0": (0, 4)}, "", {"disk0": 5}, controllers=["scsi-io0"])
    assert mine.signature == "taken-not-completed"
    assert "scsi-io0/2: avail.idx 104 last_avail 104 inuse 4" in mine.describe()
    assert mine.as_dict()["controllers"] == ["scsi-io0"]
    other = StallEvidence(["disk0"], [held], True, {"disk0": (0, 0)}, "", {"disk0": 5})
    assert other.signature == "guest-idle"  # another device's queue does not class this stall
    abort_not_taken = controller_queue(queue="scsi-io0/0", avail_idx=101)  # the guest's EH sent an abort
    lost = StallEvidence(["disk0"], [abort_not_taken, controller_queue()], True, {"disk0": (0, 1)}, "",
                         {"disk0": 5}, controllers=["scsi-io0"])  # fmt: skip
    assert lost.signature == "ring-not-taken"
