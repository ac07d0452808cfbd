"""A guest on qemu-storage-daemon: vhost-user-blk disks in the topology, the
guest's command line (shared RAM, a vhost-user-blk-pci per disk in its PCI
slot), the daemon's exports, how the guest tells the disks apart, and the
writes it counts."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from txnstorm.errors import TxnstormError
from txnstorm.scenario.guest_on_daemon import parse_write_counts
from txnstorm.vm.caps import Capabilities, export_types, needs_of
from txnstorm.vm.cmdline import BootFiles, LaunchSpec, build_args
from txnstorm.vm.storage_daemon import DaemonSpec
from txnstorm.vm.storage_daemon import build_args as daemon_args
from txnstorm.vm.topology import FIRST_FIXED_PCI_SLOT, GUEST_DISK_LOOP, Disk, Topology
from txnstorm.workload.guest_storm import guest_devices

DISKS = tuple(Disk(f"disk{i}", bus="vhost-user-blk", iothread="io0", pci_slot=0x10 + i) for i in range(2))
TOPOLOGY = Topology("vhost-unit", DISKS)


def spec(tmp_path: Path, topology: Topology = TOPOLOGY) -> LaunchSpec:
    return LaunchSpec(
        accel="tcg", boot=BootFiles(tmp_path / "k", tmp_path / "i", ""), qmp_socket=tmp_path / "q",
        console_log=tmp_path / "c", ssh_port=2222, images={},
        vhost_sockets={d.name: tmp_path / f"{d.name}.vhost" for d in topology.disks if d.on_daemon},
    )  # fmt: skip


def test_the_guest_shares_its_ram_and_has_one_vhost_user_blk_pci_per_disk_in_its_slot(tmp_path):
    args = build_args(Path("qemu"), TOPOLOGY, spec(tmp_path))
    assert args[args.index("-machine") + 1] == "pc,dump-guest-core=off,memory-backend=ram0"
    assert "memory-backend-memfd,id=ram0,size=512M,share=on" in args  # the back end maps the guest's RAM
    assert "-blockdev" not in args  # the images are the daemon's
    assert f"socket,id=disk1-vhost,path={tmp_path}/disk1.vhost" in args
    assert "vhost-user-blk-pci,id=disk1-dev,chardev=disk1-vhost,num-queues=1,addr=0x11" in args
    assert "iothread,id=io0" not in args  # the iothread is the daemon's


def test_a_machine_without_vhost_disks_keeps_private_ram(tmp_path):
    topology = Topology("t", (Disk("disk0"),))
    args = build_args(Path("qemu"), topology, LaunchSpec(
        accel="tcg", boot=BootFiles(tmp_path / "k", tmp_path / "i", ""), qmp_socket=tmp_path / "q",
        console_log=tmp_path / "c", ssh_port=2222, images={"disk0": tmp_path / "d"},
    ))  # fmt: skip
    assert args[args.index("-machine") + 1] == "pc,dump-guest-core=off"
    assert not [a for a in args if "memory-backend" in a]


def test_a_vhost_disk_without_its_socket_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"no image \(or vhost-user socket\) for disks \['disk1'\]"):
        build_args(Path("qemu"), TOPOLOGY, LaunchSpec(
            accel="tcg", boot=BootFiles(tmp_path / "k", tmp_path / "i", ""), qmp_socket=tmp_path / "q",
            console_log=tmp_path / "c", ssh_port=2222, images={}, vhost_sockets={"disk0": tmp_path / "s"},
        ))  # fmt: skip


def test_the_daemon_exports_vhost_disks_over_vhost_user_blk_and_needs_no_nbd_server(tmp_path):
    args = daemon_args(Path("qsd"), TOPOLOGY, DaemonSpec(tmp_path / "qmp.sock", tmp_path / "nbd.sock",
                                                         {d.name: tmp_path / d.name for d in DISKS}))  # fmt: skip
    exports = [args[i + 1] for i, a in enumerate(args) if a == "--export"]
    assert exports[0] == (
        "type=vhost-user-blk,id=disk0,node-name=disk0,writable=on,"
        f"addr.type=unix,addr.path={tmp_path}/disk0.vhost,num-queues=1,iothread=io0"
    )
    assert "--nbd-server" not in args


def test_an_export_may_refuse_to_leave_its_iothread(tmp_path):
    disk = Disk("disk0", bus="vhost-user-blk", iothread="io0", pci_slot=0x10, fixed_iothread=True)
    args = daemon_args(
        Path("qsd"), Topology("t", (disk,)), DaemonSpec(tmp_path / "q", tmp_path / "n", {"disk0": tmp_path})
    )
    assert args[args.index("--export") + 1].endswith(",iothread=io0,fixed-iothread=on")
    with pytest.raises(ValueError, match="fixed_iothread needs an iothread"):
        Disk("d", iothread=None, fixed_iothread=True)


def test_the_guest_knows_a_vhost_disk_by_its_pci_slot():
    """The daemon answers every GET_ID with one fixed serial: the guest loop names such a disk by
    its PCI address, which the topology fixes."""
    assert DISKS[1].serial == "pci-0000:00:11.0"
    assert Disk("d").serial == "d"


def test_the_guest_disk_loop_names_vhost_disks_by_pci_address(tmp_path):
    sysfs = tmp_path / "sys"
    pci = sysfs / "devices" / "pci0000:00" / "0000:00:11.0"
    (pci / "virtio3").mkdir(parents=True)
    vdb = sysfs / "block" / "vdb"
    vdb.mkdir(parents=True)
    (vdb / "serial").write_text("vhost_user_blk")
    (vdb / "device").symlink_to(pci / "virtio3")
    vda = sysfs / "block" / "vda"
    vda.mkdir()
    (vda / "serial").write_text("disk0")
    loop = GUEST_DISK_LOOP.replace("/sys/block", str(sysfs / "block")) + " echo $n $s; done"
    out = subprocess.run(["sh", "-c", loop], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["vda disk0", "vdb pci-0000:00:11.0"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Disk("d", bus="vhost-user-blk"), "needs a pci_slot"),
        (lambda: Topology("t", (Disk("a", bus="vhost-user-blk", pci_slot=0x10),
                                Disk("b", bus="vhost-user-blk", pci_slot=0x10))), "must differ"),
        (lambda: Topology("t", (Disk("a", bus="vhost-user-blk", pci_slot=3),)), "must differ and lie in 0x10"),
    ],
)  # fmt: skip
def test_bad_vhost_disks_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
    assert FIRST_FIXED_PCI_SLOT == 0x10


def test_what_a_guest_on_the_daemon_needs_of_qemu():
    assert needs_of(TOPOLOGY)["devices"] == ["vhost-user-blk-pci"]
    caps = Capabilities("7.2.22", frozenset(), frozenset(), devices=frozenset({"virtio-blk-pci"}))
    assert caps.missing(devices=tuple(needs_of(TOPOLOGY)["devices"])) == ["device vhost-user-blk-pci"]


def test_export_types_come_from_the_daemons_schema():
    schema = [
        {"meta-type": "enum", "name": "1", "members": [{"name": "nbd"}, {"name": "qcow2"}]},  # BlockdevDriver
        {"meta-type": "object", "name": "2", "members": [{"name": "nbd", "type": "str"}]},
        {"meta-type": "enum", "name": "3", "values": ["nbd", "vhost-user-blk", "fuse"]},  # BlockExportType
    ]
    assert export_types(schema) == {"nbd", "vhost-user-blk", "fuse"}
    assert export_types([{"meta-type": "enum", "name": "3", "values": ["nbd"]}]) == {"nbd"}


def test_the_storm_finds_a_vhost_disk_by_its_slot():
    by_serial = {"pci-0000:00:10.0": "/dev/vdb", "pci-0000:00:11.0": "/dev/vda"}
    booted = SimpleNamespace(
        vm=SimpleNamespace(topology=TOPOLOGY), guest=SimpleNamespace(disks_by_serial=lambda: by_serial)
    )
    assert guest_devices(booted, ["disk0", "disk1"]) == {"disk0": "/dev/vdb", "disk1": "/dev/vda"}


def test_writes_are_the_guests_completed_ones():
    # /sys/block/<dev>/stat: reads, merges, sectors, ticks, then writes completed (5th field)
    stat = "  120 0 960 30 4140 0 33120 900 0 100 930\n  5 0 40 1 4153 0 33224 910 3 101 911\n"
    assert parse_write_counts(stat, ["disk0", "disk1"]) == {"disk0": 4140, "disk1": 4153}
    with pytest.raises(TxnstormError, match="unreadable"):
        parse_write_counts("1 2 3\n", ["disk0"])
    with pytest.raises(TxnstormError, match="unreadable"):
        parse_write_counts(stat, ["disk0"])


def test_machine_and_daemon_share_the_naming_convention():
    assert [json.dumps(d.node) for d in DISKS] == ['"disk0"', '"disk1"']
    assert [d.qdev for d in DISKS] == ["disk0-dev", "disk1-dev"]
