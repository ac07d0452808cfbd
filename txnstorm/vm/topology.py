"""What a scenario's machine looks like: data disks, iothreads, sizes.

A topology is data.  The machine turns it into a QEMU command line; tests
and the matrix pick topologies by name instead of repeating device options.
Naming convention (used by QMP actions and by the guest):

* format node (the device's root at boot) = ``disk.name``   (e.g. ``disk0``)
* protocol node                          = ``disk.name + "-file"``
* qdev id                                = ``disk.name + "-dev"``
* serial seen by the guest               = ``disk.name``
  (virtio-blk: ``/sys/block/vdX/serial``; scsi-hd: VPD page 0x80)

A disk is a ``virtio-blk-pci`` device (``bus="virtio-blk"``), a ``scsi-hd``
(``bus="scsi"``) on a ``virtio-scsi-pci`` controller, or a
``vhost-user-blk-pci`` device (``bus="vhost-user-blk"``) whose image, nodes
and iothread live in a qemu-storage-daemon that exports the disk over
vhost-user-blk: the guest's requests reach the daemon's dataplane directly.
The daemon answers every GET_ID with the fixed serial ``vhost_user_blk``, so
the guest knows such a disk by its PCI slot (``pci_slot``; serial
``pci-0000:00:SS.0``).  The machine has one
controller per iothread its scsi disks name (id ``scsi-<iothread>``, or
``scsi-main`` for the main loop): the iothread belongs to the controller and
every disk on it shares its request queues.  Scsi disks with a ``vq_mapping``
(QEMU 10.0+) sit on a controller whose request queues are spread over those
iothreads (id ``scsi-<io0>-<io1>...``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

AIO_MODES = ("threads", "native", "io_uring")
BUSES = ("virtio-blk", "scsi", "vhost-user-blk")
FIRST_FIXED_PCI_SLOT = 0x10  # devices with a pci_slot sit from here; QEMU places the others from slot 1 up
VHOST_USER_BLK_SERIAL = "vhost_user_blk"  # what qemu-storage-daemon's export answers to GET_ID, for every disk
SCSI_CONTROL_QUEUE, SCSI_EVENT_QUEUE, SCSI_REQUEST_QUEUE0 = 0, 1, 2  # virtio-scsi's virtqueues

# The guest's disks and their serials, as a shell loop head (busybox sh): the body sees ``$b`` (the
# /sys/block dir), ``$n`` (vdX, sdX) and ``$s`` (the serial: virtio-blk's ``serial`` file, or a
# scsi disk's VPD page 0x80 after its 4-byte header; for a vhost-user-blk disk ``pci-`` and its PCI
# address) and must end with ``done``.
GUEST_DISK_LOOP = (
    "for b in /sys/block/vd* /sys/block/sd*; do [ -e $b ] || continue; n=${b##*/};"
    " s=$(cat $b/serial 2>/dev/null || tail -c +5 $b/device/vpd_pg80 2>/dev/null);"
    f' [ "$s" = {VHOST_USER_BLK_SERIAL} ] && s=pci-$(basename $(readlink -f $b/device/..));'
)


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
    # The device's queues spread round-robin over these iothreads (iothread-vq-mapping) instead of
    # one ``iothread``: virtio-blk since QEMU 9.0, a scsi disk's controller (its request queues;
    # the control and event queues stay in the main loop) since 10.0.
    vq_mapping: tuple[str, ...] = ()
    # "virtio-blk": a virtio-blk-pci device; "scsi": a scsi-hd on the virtio-scsi-pci controller of its
    # iothread (``num_queues`` is then the controller's request queues: its disks must agree).
    bus: str = "virtio-blk"
    # vhost-user-blk: the device's slot on the guest's PCI bus (how the guest tells the disks apart).
    pci_slot: int | None = None
    # A qemu-storage-daemon export of the disk refuses to leave its iothread (fixed-iothread=on).
    fixed_iothread: bool = False
    # The device's werror policy (None: QEMU's default, report): "stop" parks a failed write in the
    # device and stops the VM until ``cont`` restarts it.
    werror: str | None = None
    # A guest write touching this byte fails once with EIO (a blkdebug filter on top of the format
    # node, which is then ``format_node``): the trigger of ``werror``.
    fail_once_at: int | None = None

    def __post_init__(self) -> None:
        if self.aio not in AIO_MODES:
            raise ValueError(f"disk {self.name}: aio must be one of {AIO_MODES}, not {self.aio!r}")
        if self.bus not in BUSES:
            raise ValueError(f"disk {self.name}: bus must be one of {BUSES}, not {self.bus!r}")
        if self.bus == "vhost-user-blk" and (self.pci_slot is None or self.vq_mapping):
            raise ValueError(f"disk {self.name}: a vhost-user-blk disk needs a pci_slot and no vq_mapping")
        if self.fixed_iothread and not self.iothread:
            raise ValueError(f"disk {self.name}: fixed_iothread needs an iothread")
        if self.num_queues < 1:
            raise ValueError(f"disk {self.name}: num_queues must be at least 1")
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
    def format_node(self) -> str:
        """The image's format node: ``node`` itself, unless a blkdebug filter sits on top of it."""
        return f"{self.name}-fmt" if self.fail_once_at is not None else self.name

    @property
    def file_node(self) -> str:
        return f"{self.name}-file"

    @property
    def qdev(self) -> str:
        return f"{self.name}-dev"

    @property
    def serial(self) -> str:
        """How the guest knows the disk (``GUEST_DISK_LOOP``'s ``$s``)."""
        if self.bus == "vhost-user-blk":
            return f"pci-0000:00:{self.pci_slot:02x}.0"
        return self.name

    @property
    def on_daemon(self) -> bool:
        """The disk's image and nodes are a qemu-storage-daemon's, not the machine's."""
        return self.bus == "vhost-user-blk"

    @property
    def controller(self) -> str | None:
        """The qdev id of the virtio-scsi-pci controller a scsi disk sits on (None for virtio-blk)."""
        if self.bus != "scsi":
            return None
        return f"scsi-{'-'.join(self.vq_mapping) or self.iothread or 'main'}"

    @property
    def virtio_path(self) -> str:
        """The QOM path of the virtio device that carries this disk's requests (for x-query-virtio-*)."""
        return f"/machine/peripheral/{self.controller or self.qdev}/virtio-backend"

    @property
    def device_virtqueues(self) -> tuple[int, ...]:
        """Every virtqueue of the device that carries this disk (virtio-scsi's control and event
        queues too)."""
        return (SCSI_CONTROL_QUEUE, SCSI_EVENT_QUEUE, *self.virtqueues) if self.controller else self.virtqueues

    @property
    def virtqueues(self) -> tuple[int, ...]:
        """The indexes of the virtqueues that carry this disk's requests (a scsi disk shares its
        controller's request queues with every disk on it)."""
        first = SCSI_REQUEST_QUEUE0 if self.bus == "scsi" else 0
        return tuple(range(first, first + self.num_queues))


def iothreads_of(disks: Sequence[Disk]) -> list[str]:
    return sorted({d.iothread for d in disks if d.iothread} | {t for d in disks for t in d.vq_mapping})


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
    # The guest's fio reaps its completions by polling (io_uring hipri on a virtio-blk poll queue,
    # workload/polled.py): it refills its queue while a QMP command holds the big lock and no
    # interrupt reaches the guest, as a KVM guest's vCPU does.  Linux gives a disk a poll queue only
    # beside a default one, and no more queues than vCPUs: num_queues >= 2 and smp >= 2.
    storm_polled: bool = False

    def __post_init__(self) -> None:
        names = [d.name for d in self.disks]
        if len(set(names)) != len(names):
            raise ValueError(f"topology {self.name}: duplicate disk names {names}")
        slots = [d.pci_slot for d in self.disks if d.pci_slot is not None]
        if len(set(slots)) != len(slots) or any(not FIRST_FIXED_PCI_SLOT <= slot < 0x20 for slot in slots):
            raise ValueError(
                f"topology {self.name}: pci_slots {slots} must differ and lie in "
                f"{FIRST_FIXED_PCI_SLOT:#x}..0x1f (QEMU gives the other devices the slots below)"
            )
        if self.storm_polled and (self.smp < 2 or any(d.bus != "virtio-blk" or d.num_queues < 2 for d in self.disks)):
            raise ValueError(f"topology {self.name}: a polled storm needs virtio-blk disks with 2+ queues and smp >= 2")
        for controller, disks in self.scsi_controllers.items():
            if len({d.num_queues for d in disks}) != 1:  # (vq_mapping agrees: it is in the id)
                raise ValueError(
                    f"topology {self.name}: the scsi disks on {controller} ({', '.join(d.name for d in disks)}) "
                    "must agree on num_queues (the controller's request queues)"
                )
            if len(disks) > 255:
                raise ValueError(f"topology {self.name}: more than 255 scsi disks on {controller}")

    @property
    def scsi_controllers(self) -> dict[str, list[Disk]]:
        """{controller id: its scsi disks, in topology order} (the controller of the first one first)."""
        controllers: dict[str, list[Disk]] = {}
        for d in self.disks:
            if d.controller:
                controllers.setdefault(d.controller, []).append(d)
        return controllers

    @property
    def iothreads(self) -> list[str]:
        """Every iothread the disks name (what a qemu-storage-daemon serving them all runs)."""
        return iothreads_of(self.disks)

    @property
    def machine_iothreads(self) -> list[str]:
        """The iothreads the guest's QEMU runs (a daemon's disks have theirs in the daemon)."""
        return iothreads_of([d for d in self.disks if not d.on_daemon])

    @property
    def on_daemon(self) -> bool:
        """Some disk is a qemu-storage-daemon's vhost-user-blk export (the guest's RAM must be shared)."""
        return any(d.on_daemon for d in self.disks)

    def disk(self, name: str) -> Disk:
        for d in self.disks:
            if d.name == name:
                return d
        raise KeyError(f"topology {self.name} has no disk {name!r}")


TWO_DISKS_ONE_IOTHREAD = Topology(
    name="two-disks-one-iothread",
    disks=(Disk("disk0", iothread="io0"), Disk("disk1", iothread="io0")),
)

# A guest that races a QMP command under TCG (class 1 of teeth/, measured in
# docs/teeth.md): while the command holds the big lock the guest gets no interrupts and a kick
# (an MMIO exit) waits for the lock.  An iothread that keeps polling its rings (a long
# poll-max-ns that poll-shrink=1 never shrinks) spares the kick; a guest that polls its
# completions (storm_polled) refills its 64 slots as the iothread completes them, without an
# interrupt.  The same shape users choose for latency.  16 MiB disks: each round writes a full
# backup of every disk and an overlay the storm fills (64 KiB clusters under 4 KiB random writes),
# 4 x 16 MiB a round instead of 4 x 64 MiB, which on a host with a slow disk was most of a round.
POLLING_IOTHREAD_POLLED_GUEST = Topology(
    name="polling-iothread-polled-guest",
    disks=tuple(Disk(f"disk{i}", iothread="io0", num_queues=2, size="16M") for i in range(2)),
    smp=2,
    iothread_options=("poll-max-ns=20000000", "poll-shrink=1"),
    storm_iodepth=64,
    storm_polled=True,
)

# The matrix: every topology a transaction must hold one point in time on.
TOPOLOGIES: dict[str, Topology] = {
    t.name: t
    for t in (
        TWO_DISKS_ONE_IOTHREAD,
        POLLING_IOTHREAD_POLLED_GUEST,
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
        # virtio-scsi: scsi-hd disks on a virtio-scsi-pci controller with an iothread, alone and beside
        # virtio-blk (each on its own iothread: two kinds of dataplane drained by one transaction).
        Topology("scsi-two-disks-one-iothread", (Disk("disk0", bus="scsi"), Disk("disk1", bus="scsi"))),
        Topology("scsi-beside-blk", (Disk("disk0", bus="scsi", iothread="io0"), Disk("disk1", iothread="io1"))),
        # QEMU 10.0+: the scsi controller's two request queues on two iothreads (iothread-vq-mapping).
        Topology(
            "scsi-vq-mapping",
            tuple(
                Disk(f"disk{i}", bus="scsi", iothread=None, num_queues=2, vq_mapping=("io0", "io1")) for i in range(2)
            ),
            smp=2,
        ),
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
