import json
from pathlib import Path

import pytest

from txnstorm.vm.cmdline import BootFiles, LaunchSpec, build_args, device_arg
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD, Disk, Topology


def spec(tmp_path: Path, accel: str = "tcg", images=None) -> LaunchSpec:
    return LaunchSpec(
        accel=accel,
        boot=BootFiles(Path("/k/vmlinux"), Path("/k/initramfs.cpio"), "console=ttyS0"),
        qmp_socket=tmp_path / "qmp.sock",
        console_log=tmp_path / "console.log",
        ssh_port=40022,
        images=images if images is not None else {"disk0": tmp_path / "d0.qcow2", "disk1": tmp_path / "d1.qcow2"},
    )


def values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == option]


def test_disks_are_blockdev_nodes_on_dataplane_devices(tmp_path):
    args = build_args(Path("/usr/bin/qemu-system-x86_64"), TWO_DISKS_ONE_IOTHREAD, spec(tmp_path))
    nodes = [json.loads(v) for v in values(args, "-blockdev")]
    assert nodes[0] == {"driver": "file", "filename": str(tmp_path / "d0.qcow2"), "node-name": "disk0-file"}
    assert nodes[1] == {"driver": "qcow2", "file": "disk0-file", "node-name": "disk0"}
    assert [n["node-name"] for n in nodes] == ["disk0-file", "disk0", "disk1-file", "disk1"]
    assert values(args, "-object") == ["iothread,id=io0"]
    devices = values(args, "-device")
    assert "virtio-blk-pci,id=disk0-dev,drive=disk0,serial=disk0,iothread=io0" in devices
    assert "virtio-blk-pci,id=disk1-dev,drive=disk1,serial=disk1,iothread=io0" in devices


def test_ssh_is_forwarded_on_loopback_only_and_guest_is_restricted(tmp_path):
    args = build_args(Path("qemu"), TWO_DISKS_ONE_IOTHREAD, spec(tmp_path))
    (netdev,) = values(args, "-netdev")
    assert "restrict=on" in netdev
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdev


def test_qmp_and_console_go_where_asked(tmp_path):
    args = build_args(Path("qemu"), TWO_DISKS_ONE_IOTHREAD, spec(tmp_path))
    chardevs = values(args, "-chardev")
    assert f"socket,id=qmp0,path={tmp_path / 'qmp.sock'}" in chardevs
    assert f"file,id=console0,path={tmp_path / 'console.log'}" in chardevs
    assert values(args, "-mon") == ["chardev=qmp0,mode=control"]


@pytest.mark.parametrize(("accel", "cpu"), [("tcg", "max"), ("kvm", "host")])
def test_accel_selects_cpu_model(tmp_path, accel, cpu):
    args = build_args(Path("qemu"), TWO_DISKS_ONE_IOTHREAD, spec(tmp_path, accel))
    assert values(args, "-accel") == [accel]
    assert values(args, "-cpu") == [cpu]


def test_unknown_accel_is_refused(tmp_path):
    with pytest.raises(ValueError, match="accel"):
        build_args(Path("qemu"), TWO_DISKS_ONE_IOTHREAD, spec(tmp_path, "hvf"))


def test_every_disk_needs_an_image(tmp_path):
    with pytest.raises(ValueError, match="disk1"):
        build_args(Path("qemu"), TWO_DISKS_ONE_IOTHREAD, spec(tmp_path, images={"disk0": tmp_path / "x"}))


def test_main_loop_disk_has_no_iothread_and_options_follow_topology():
    assert device_arg(Disk("d", iothread=None)) == "virtio-blk-pci,id=d-dev,drive=d,serial=d"
    arg = device_arg(Disk("d", iothread="io1", num_queues=4, share_rw=True))
    assert arg.endswith("iothread=io1,num-queues=4,share-rw=on")


def test_iothreads_are_declared_once_each(tmp_path):
    topo = Topology("t", (Disk("a", iothread="io1"), Disk("b", iothread="io0"), Disk("c", iothread=None)))
    assert topo.iothreads == ["io0", "io1"]


def test_duplicate_disk_names_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        Topology("t", (Disk("a"), Disk("a")))


def test_trace_events_go_to_their_own_log(tmp_path):
    from txnstorm.vm.cmdline import BootFiles, LaunchSpec, build_args
    from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD

    spec = LaunchSpec(
        accel="tcg", boot=BootFiles(tmp_path / "k", tmp_path / "i", ""), qmp_socket=tmp_path / "q",
        console_log=tmp_path / "c", ssh_port=2222, images={"disk0": tmp_path / "a", "disk1": tmp_path / "b"},
        trace=("virtio_notify*", "virtqueue_flush"), trace_log=tmp_path / "qemu-trace.log",
    )  # fmt: skip
    args = build_args(tmp_path / "qemu", TWO_DISKS_ONE_IOTHREAD, spec)
    assert args[args.index("-D") + 1] == str(tmp_path / "qemu-trace.log")
    assert [args[i + 1] for i, a in enumerate(args) if a == "-trace"] == [
        "enable=virtio_notify*",
        "enable=virtqueue_flush",
    ]
    untraced = build_args(tmp_path / "qemu", TWO_DISKS_ONE_IOTHREAD, LaunchSpec(**{**spec.__dict__, "trace": ()}))
    assert "-D" not in untraced and "-trace" not in untraced


def test_host_aio_backend_goes_on_the_file_node(tmp_path):
    import json

    import pytest

    from txnstorm.vm.cmdline import blockdev_args
    from txnstorm.vm.topology import TOPOLOGIES, Disk

    native = json.loads(blockdev_args(Disk("d", aio="native", cache_direct=True), tmp_path / "d.qcow2")[1])
    assert native["aio"] == "native" and native["cache"] == {"direct": True}
    default = json.loads(blockdev_args(Disk("d"), tmp_path / "d.qcow2")[1])
    assert "aio" not in default and "cache" not in default  # QEMU's defaults, as before
    with pytest.raises(ValueError, match="aio=native needs cache_direct=True"):
        Disk("d", aio="native")
    with pytest.raises(ValueError, match="aio must be one of"):
        Disk("d", aio="posix")
    assert {"aio-native-direct", "aio-io-uring", "aio-threads-direct"} <= set(TOPOLOGIES)


def test_vq_mapping_needs_json_device_syntax_and_its_iothreads():
    import json

    import pytest

    from txnstorm.vm.cmdline import device_arg
    from txnstorm.vm.topology import TOPOLOGIES, Disk

    disk = Disk("d", iothread=None, num_queues=2, vq_mapping=("io0", "io1"))
    device = json.loads(device_arg(disk))
    assert device["iothread-vq-mapping"] == [{"iothread": "io0"}, {"iothread": "io1"}]
    assert device["num-queues"] == 2 and "iothread" not in device
    assert TOPOLOGIES["vq-mapping"].iothreads == ["io0", "io1"]  # the -object iothread lines follow from it
    with pytest.raises(ValueError, match="vq_mapping needs iothread=None"):
        Disk("d", num_queues=2, vq_mapping=("io0", "io1"))  # iothread defaults to io0


def test_a_qemu_without_vq_mapping_names_the_missing_property():
    from txnstorm.vm.caps import Capabilities

    caps = Capabilities("7.2.22", frozenset(), frozenset(), device_props={"virtio-blk-pci": frozenset({"iothread"})})
    assert caps.missing(props={"virtio-blk-pci": ["iothread-vq-mapping"]}) == [
        "virtio-blk-pci property iothread-vq-mapping"
    ]


def test_a_polling_iothread_keeps_its_options(tmp_path):
    from txnstorm.vm.topology import POLLING_IOTHREAD_POLLED_GUEST

    args = build_args(Path("/usr/bin/qemu-system-x86_64"), POLLING_IOTHREAD_POLLED_GUEST, spec(tmp_path))
    assert values(args, "-object") == ["iothread,id=io0,poll-max-ns=20000000,poll-shrink=1"]
    assert POLLING_IOTHREAD_POLLED_GUEST.storm_iodepth == 64
