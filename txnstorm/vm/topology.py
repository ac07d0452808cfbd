"""What a scenario's machine looks like: data disks, iothreads, sizes.

A topology is data.  The machine turns it into a QEMU command line; tests
and the matrix pick topologies by name instead of repeating device options.
Naming convention (used by QMP actions and by the guest):

* format node (the device's root at boot) = ``disk.name``   (e.g. ``disk0``)
* protocol node                          = ``disk.name + "-file"``
* qdev id                                = ``disk.name + "-dev"``
* virtio serial seen by the guest        = ``disk.name``
"""

from __future__ import annotations

from dataclasses import dataclass, field

AIO_MODES = ("threads", "native", "io_uring")


@dataclass(frozen=True)
class Disk:
    name: str
    size: str = "64M"
    fmt: str = "qcow2"
    iothread: str | None = "io0"  # None: the disk is served by the main loop
    num_queues: int = 1
    share_rw: bool = False  # needed when an NBD export writes the same node
    aio: str = "threads"  # the host AIO backend of the image's file node: threads, native, io_uring
    cache_direct: bool = False  # O_DIRECT on the image file (aio=native needs it)
    # QEMU 9.0+: the device's queues spread round-robin over these iothreads (iothread-vq-mapping)
    # instead of one ``iothread``.
    vq_mapping: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.aio not in AIO_MODES:
            raise ValueError(f"disk {self.name}: aio must be one of {AIO_MODES}, not {self.aio!r}")
        if self.vq_mapping and (self.iothread or self.num_queues < len(self.vq_mapping)):
            raise ValueError(f"disk {self.name}: vq_mapping needs iothread=None and num_queues >= its iothreads")
        if self.aio == "native" and not self.cache_direct:
            raise ValueError(f"disk {self.name}: aio=native needs cache_direct=True (QEMU refuses it otherwise)")

    @property
    def size_bytes(self) -> int:
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        suffix = self.size[-1].upper()
        return int(self.size[:-1]) * units[suffix] if suffix in units else int(self.size)

    @property
    def node(self) -> str:
        return self.name

    @property
    def file_node(self) -> str:
        return f"{self.name}-file"

    @property
    def qdev(self) -> str:
        return f"{self.name}-dev"

    @property
    def serial(self) -> str:
        return self.name


@dataclass(frozen=True)
class Topology:
    name: str
    disks: tuple[Disk, ...]
    memory_mb: int = 512
    smp: int = 1
    extra_args: tuple[str, ...] = field(default=())
    # Options of every iothread object (e.g. its adaptive polling: "poll-max-ns=...").
    iothread_options: tuple[str, ...] = ()
    # How many writes the guest's fio keeps in flight per disk.
    storm_iodepth: int = 8

    def __post_init__(self) -> None:
        names = [d.name for d in self.disks]
        if len(set(names)) != len(names):
            raise ValueError(f"topology {self.name}: duplicate disk names {names}")

    @property
    def iothreads(self) -> list[str]:
        return sorted({d.iothread for d in self.disks if d.iothread} | {t for d in self.disks for t in d.vq_mapping})

    def disk(self, name: str) -> Disk:
        for d in self.disks:
            if d.name == name:
                return d
        raise KeyError(f"topology {self.name} has no disk {name!r}")


TWO_DISKS_ONE_IOTHREAD = Topology(
    name="two-disks-one-iothread",
    disks=(Disk("disk0", iothread="io0"), Disk("disk1", iothread="io0")),
)

# A guest that races a QMP command under TCG (class 1 of teeth/, measured in the
# README): while the command holds the big lock the guest gets no interrupts,
# so it writes only from its free queue slots, and only without a kick (a kick
# is an MMIO exit that waits for the lock).  An iothread that keeps polling its
# rings (a long poll-max-ns that poll-shrink=1 never shrinks) spares the kick;
# a deep fio queue gives the slots.  The same shape users choose for latency.
POLLING_IOTHREAD_DEEP_QUEUE = Topology(
    name="polling-iothread-deep-queue",
    disks=(Disk("disk0", iothread="io0"), Disk("disk1", iothread="io0")),
    iothread_options=("poll-max-ns=20000000", "poll-shrink=1"),
    storm_iodepth=64,
)

# The matrix: every topology a transaction must hold one point in time on.
TOPOLOGIES: dict[str, Topology] = {
    t.name: t
    for t in (
        TWO_DISKS_ONE_IOTHREAD,
        POLLING_IOTHREAD_DEEP_QUEUE,
        Topology(
            "three-disks-one-iothread",
            (Disk("disk0", iothread="io0"), Disk("disk1", iothread="io0"), Disk("disk2", iothread="io0")),
        ),
        Topology("iothread-per-disk", (Disk("disk0", iothread="io0"), Disk("disk1", iothread="io1"))),
        Topology("main-loop-and-iothread", (Disk("disk0", iothread=None), Disk("disk1", iothread="io0"))),
        Topology(
            "multiqueue",
            (Disk("disk0", iothread="io0", num_queues=2), Disk("disk1", iothread="io0", num_queues=2)),
            smp=2,
        ),
        Topology("raw-disks", (Disk("disk0", fmt="raw", iothread="io0"), Disk("disk1", fmt="raw", iothread="io0"))),
        # QEMU 9.0+: each disk's two queues on two iothreads (iothread-vq-mapping).
        Topology(
            "vq-mapping",
            tuple(Disk(f"disk{i}", iothread=None, num_queues=2, vq_mapping=("io0", "io1")) for i in range(2)),
            smp=2,
        ),
        # Host AIO backends of the images' file nodes (the overlays and targets a plan creates use QEMU's
        # defaults): Linux AIO with O_DIRECT, io_uring (where QEMU was built with liburing), O_DIRECT threads.
        *(
            Topology(
                f"aio-{aio.replace('_', '-')}{'-direct' if direct else ''}",
                tuple(Disk(f"disk{i}", iothread="io0", aio=aio, cache_direct=direct) for i in range(2)),
            )
            for aio, direct in (("native", True), ("io_uring", False), ("threads", True))
        ),  # fmt: skip
    )
}

# The NBD leg: the stamp witnesses (first and last disk) are exported over NBD
# and written by a host client as well as by the guest (share-rw), with a
# dataplane disk between them.  Witnesses live in the main loop: on QEMU 7.2
# NBD writes to iothread exports during snapshots abort (KI-2, KI-3, KI-6).
NBD_WITNESSES_MAIN_LOOP = Topology(
    "nbd-witnesses-main-loop",
    (
        Disk("disk0", iothread=None, share_rw=True),
        Disk("disk1", iothread="io0"),
        Disk("disk2", iothread=None, share_rw=True),
    ),
)
