"""Build the qemu-system-x86_64 command line for a topology.

Pure functions, no processes: what QEMU is asked to do is visible (and unit
tested) without booting anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from txnstorm.host.assets import BootFiles
from txnstorm.vm.topology import Disk, Topology

ACCELS = ("tcg", "kvm")


@dataclass(frozen=True)
class LaunchSpec:
    """Everything the command line needs beyond the topology."""

    accel: str
    boot: BootFiles
    qmp_socket: Path
    console_log: Path
    ssh_port: int
    images: dict[str, Path]  # disk name -> image file (disks on a daemon have none here)
    data_dir: Path | None = None
    trace: tuple[str, ...] = ()  # QEMU trace event patterns to enable (-trace enable=...)
    trace_log: Path | None = None  # where the log backend writes them (-D)
    vhost_sockets: dict[str, Path] = field(default_factory=dict)  # vhost-user-blk disk -> its export's socket


def opt_value(value: object) -> str:
    """A value inside QEMU's ``key=value,...`` option syntax: commas doubled."""
    return str(value).replace(",", ",,")


def cpu_model(accel: str) -> str:
    # 'host' passes the real CPU through under KVM; 'max' is TCG's richest model.
    return "host" if accel == "kvm" else "max"


def blockdev_args(disk: Disk, image: Path) -> list[str]:
    file_node: dict[str, object] = {"driver": "file", "filename": str(image), "node-name": disk.file_node}
    if disk.aio != "threads":
        file_node["aio"] = disk.aio
    if disk.cache_direct:
        file_node["cache"] = {"direct": True}
    fmt_node = {"driver": disk.fmt, "file": disk.file_node, "node-name": disk.format_node}
    args = ["-blockdev", json.dumps(file_node), "-blockdev", json.dumps(fmt_node)]
    if disk.fail_once_at is not None:  # the write touching that byte fails once (blkdebug's event pwritev)
        rule = {"event": "pwritev", "iotype": "write", "sector": disk.fail_once_at // 512, "once": True, "errno": 5}
        blkdebug = {"driver": "blkdebug", "node-name": disk.node, "image": disk.format_node, "inject-error": [rule]}
        args += ["-blockdev", json.dumps(blkdebug)]
    return args


def render_device(props: dict[str, object], as_json: bool) -> str:
    """One ``-device``: ``driver,key=value,...`` (True as ``on``), or JSON when ``as_json``: the only
    syntax for a list property (iothread-vq-mapping), and the one a device on a JSON controller
    needs (QEMU creates JSON -devices after the key=value ones)."""
    if as_json:
        return json.dumps(props)
    pairs = [f"{key}={'on' if value is True else value}" for key, value in props.items() if key != "driver"]
    return ",".join([str(props["driver"]), *pairs])


def vq_mapping(iothreads: tuple[str, ...]) -> dict[str, object]:
    return {"iothread-vq-mapping": [{"iothread": t} for t in iothreads]} if iothreads else {}


def scsi_controller_args(topology: Topology) -> list[str]:
    """One virtio-scsi-pci per iothread that scsi disks name (on it, or in the main loop), or per
    iothread-vq-mapping they name."""
    args = []
    for controller, disks in topology.scsi_controllers.items():
        first = disks[0]
        props: dict[str, object] = {"driver": "virtio-scsi-pci", "id": controller}
        if first.iothread:
            props["iothread"] = first.iothread
        props["num_queues"] = first.num_queues  # explicit: QEMU's default follows -smp
        props.update(vq_mapping(first.vq_mapping))
        args += ["-device", render_device(props, as_json=bool(first.vq_mapping))]
    return args


def scsi_device_arg(disk: Disk, scsi_id: int) -> str:
    props: dict[str, object] = {
        "driver": "scsi-hd", "id": disk.qdev, "bus": f"{disk.controller}.0", "channel": 0, "scsi-id": scsi_id,
        "lun": 0, "drive": disk.node, "serial": disk.serial,
    }  # fmt: skip
    if disk.share_rw:
        props["share-rw"] = True
    return render_device(props, as_json=bool(disk.vq_mapping))  # its controller is JSON


def vhost_user_blk_args(disk: Disk, socket: Path) -> list[str]:
    """A vhost-user-blk-pci device on the daemon's export socket, in its fixed PCI slot."""
    chardev = f"{disk.name}-vhost"
    props = {"driver": "vhost-user-blk-pci", "id": disk.qdev, "chardev": chardev, "num-queues": disk.num_queues,
             "addr": f"{disk.pci_slot:#x}"}  # fmt: skip
    return ["-chardev", f"socket,id={chardev},path={socket}", "-device", render_device(props, as_json=False)]


def device_arg(disk: Disk, scsi_id: int = 0) -> str:
    """The -device of ``disk``; ``scsi_id``: a scsi disk's target on its controller."""
    if disk.bus == "scsi":
        return scsi_device_arg(disk, scsi_id)
    props: dict[str, object] = {"driver": "virtio-blk-pci", "id": disk.qdev, "drive": disk.node, "serial": disk.serial}
    if disk.iothread:
        props["iothread"] = disk.iothread
    if disk.num_queues != 1 or disk.vq_mapping:
        props["num-queues"] = disk.num_queues
    props.update(vq_mapping(disk.vq_mapping))
    if disk.share_rw:
        props["share-rw"] = True
    if disk.werror:
        props["werror"] = disk.werror
    return render_device(props, as_json=bool(disk.vq_mapping))


def build_args(qemu: Path, topology: Topology, spec: LaunchSpec) -> list[str]:
    if spec.accel not in ACCELS:
        raise ValueError(f"accel must be one of {ACCELS}, not {spec.accel!r}")
    missing = [d.name for d in topology.disks if d.name not in (spec.vhost_sockets if d.on_daemon else spec.images)]
    if missing:
        raise ValueError(f"no image (or vhost-user socket) for disks {missing}")
    args = [
        str(qemu),
        "-name",
        f"txnstorm-{topology.name},debug-threads=on",  # named threads: CPU share, readable backtraces
        "-accel",
        spec.accel,
        "-machine",
        # dump-guest-core=off: a crash core without guest RAM, small.  A vhost-user back end maps the
        # guest's RAM: shared memory (memfd, share=on) then.
        "pc,dump-guest-core=off" + (",memory-backend=ram0" if topology.on_daemon else ""),
        "-cpu",
        cpu_model(spec.accel),
        "-m",
        str(topology.memory_mb),
        "-smp",
        str(topology.smp),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-chardev",
        f"socket,id=qmp0,path={spec.qmp_socket}",
        "-mon",
        "chardev=qmp0,mode=control",
        "-chardev",
        f"file,id=console0,path={spec.console_log}",
        "-serial",
        "chardev:console0",
        "-kernel",
        str(spec.boot.kernel),
        "-initrd",
        str(spec.boot.initrd),
        "-append",
        spec.boot.append,
        # restrict=on: the guest reaches nothing but the forwarded SSH port.
        "-netdev",
        f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22",
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",  # no option ROM: -kernel boot
    ]
    if spec.data_dir:
        args += ["-L", str(spec.data_dir)]
    for pattern in spec.trace:
        args += ["-trace", f"enable={pattern}"]
    if spec.trace and spec.trace_log:
        args += ["-D", str(spec.trace_log)]
    for iothread in topology.machine_iothreads:
        args += ["-object", ",".join([f"iothread,id={iothread}", *topology.iothread_options])]
    if topology.on_daemon:
        args += ["-object", f"memory-backend-memfd,id=ram0,size={topology.memory_mb}M,share=on"]
    args += scsi_controller_args(topology)
    scsi_ids = {d.name: i for disks in topology.scsi_controllers.values() for i, d in enumerate(disks)}
    for disk in topology.disks:
        if disk.on_daemon:
            args += vhost_user_blk_args(disk, spec.vhost_sockets[disk.name])
            continue
        args += blockdev_args(disk, spec.images[disk.name])
        args += ["-device", device_arg(disk, scsi_ids.get(disk.name, 0))]
    args += list(topology.extra_args)
    return args
