"""A guest on qemu-storage-daemon: its disks are the daemon's vhost-user-blk exports.

The story: the daemon of the QEMU under test opens two qcow2 disks and
exports each over vhost-user-blk; the guest boots with two
``vhost-user-blk-pci`` devices on those sockets (its RAM shared with the
daemon), fio storms both and the guest stamp writer stamps them; every plan
fires in turn at the daemon's QMP.  After the guest's QEMU and the daemon
have quit, the captures must be one point in time.  The guest's requests
reach the daemon's dataplane without its QEMU's big lock, so even under TCG
this guest races the daemon's transactions (as a host NBD client races
QEMU's).

The control fires the same plans as separate commands: every oracle must
catch it.  A crash or hang of the daemon (or of the guest's QEMU) is a FAIL
of that QEMU; a QEMU without a daemon, without ``vhost-user-blk-pci``, or a
daemon built without vhost-user-blk exports CANCELs.
"""

from collections.abc import Callable

from txnstorm.errors import DeviceStalled, QemuDied, QemuHung
from txnstorm.scenario.attempts import UntilFailure
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.story import Storm
from txnstorm.transactions import actions as txn
from txnstorm.vm.topology import FIRST_FIXED_PCI_SLOT, Disk, Topology


def vhost_disks(iothread: str | None, count: int = 2) -> tuple[Disk, ...]:
    """``count`` vhost-user-blk disks exported in the daemon's ``iothread`` (None: its main loop)."""
    return tuple(
        Disk(f"disk{i}", bus="vhost-user-blk", iothread=iothread, pci_slot=FIRST_FIXED_PCI_SLOT + i)
        for i in range(count)
    )


# The exports in the daemon's main loop.
VHOST_MAIN_LOOP = Topology("vhost-user-blk-main-loop", vhost_disks(None))
# Both exports in one iothread of the daemon (its dataplane).
VHOST_ONE_IOTHREAD = Topology("vhost-user-blk-one-iothread", vhost_disks("io0"))


class GuestOnVhostUserBlk(TxnstormTest):
    """The story on one topology: boot on the daemon, storm, fire every plan, verify (the guest's
    stamps checked).

    :avocado: enable
    :avocado: tags=qsd,vhost-user-blk,snapshot,backup,internal-snapshot
    """

    timeout = 600
    NEEDS_DAEMON = True

    def test_one_point_in_time_exports_in_main_loop(self):
        """About 20 s on every QEMU measured: the quick tier's.

        :avocado: tags=quick
        """
        self.one_point_in_time(VHOST_MAIN_LOOP, storm_of=self.guest_on_daemon_storm, stamps="guest")

    def test_one_point_in_time_exports_in_an_iothread(self):
        """The daemon's dataplane: 10.0.13 and 10.2.2 hang in the first rounds (KI-11), 90 s.

        :avocado: tags=nightly
        """
        self.one_point_in_time(VHOST_ONE_IOTHREAD, storm_of=self.guest_on_daemon_storm, stamps="guest")


class GuestOnVhostUserBlkControl(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=qsd,vhost-user-blk,snapshot,backup,internal-snapshot,control
    """

    timeout = 600
    NEEDS_DAEMON = True

    def test_separate_commands_are_caught_exports_in_main_loop(self):
        """:avocado: tags=quick"""
        self.separate_commands_caught(VHOST_MAIN_LOOP, storm_of=self.guest_on_daemon_storm)

    def test_separate_commands_are_caught_exports_in_an_iothread(self):
        """10.0.13 aborts at the first backup (KI-12), 10.2.2 hangs (KI-11).

        :avocado: tags=nightly
        """
        self.separate_commands_caught(VHOST_ONE_IOTHREAD, storm_of=self.guest_on_daemon_storm)


# One disk exported in an iothread: the smallest shape that hangs 10.2.2 (KI-11).
VHOST_ONE_DISK_IN_AN_IOTHREAD = Topology("vhost-user-blk-one-disk-one-iothread", vhost_disks("io0", count=1))
# The same export with fixed-iothread=on: a backup job then moves no node (KI-10 needs the move).
VHOST_ONE_DISK_FIXED_IOTHREAD = Topology(
    "vhost-user-blk-one-disk-fixed-iothread",
    (Disk("disk0", bus="vhost-user-blk", iothread="io0", pci_slot=FIRST_FIXED_PCI_SLOT, fixed_iothread=True),),
)


Trigger = Callable[[TxnstormTest, Storm, int], None]


def fire_until_failure(test: TxnstormTest, topology: Topology, trigger: Trigger, tries: int) -> None:
    """A daemon reproducer: the storm of ``GuestOnVhostUserBlk`` on ``topology`` (one disk
    exported in an iothread), then up to ``tries`` triggers (``-p tries=N``), each answered and
    followed by the guest writing again, until the daemon hangs, dies or stalls; the verdict is
    the issue's (``report``)."""
    attempts = UntilFailure(
        most=int(test.params.get("tries", default=tries)), failures=(QemuHung, QemuDied, DeviceStalled)
    )
    with attempts, test.guest_on_daemon_storm(topology, []) as storm:
        storm.still_writing()
        for number in attempts:
            trigger(test, storm, number)
            storm.still_writing()
    test.report(attempts.failure, tries=attempts.tries)


def bitmap_add_transaction(test: TxnstormTest, storm: Storm, number: int) -> None:
    """A transaction of a single ``block-dirty-bitmap-add``: no job, no node added, only the drain
    every transaction begins with (``bdrv_drain_all``)."""
    storm.vm.note(f"{test.ISSUE} try {number}: a transaction of block-dirty-bitmap-add while the guest writes")
    txn.fire_transaction(storm.vm, [txn.dirty_bitmap_add("disk0", f"try-{number}")])


def drive_backup_of_disk0(test: TxnstormTest, storm: Storm, number: int) -> None:
    """One ``drive-backup`` (a command of its own, no transaction) of disk0, its job waited for."""
    job = f"ki12-backup-{number}"
    target = test.scratch / f"{job}.qcow2"
    storm.vm.note(f"{test.ISSUE} try {number}: drive-backup of disk0 while the guest writes")
    storm.vm.cmd("drive-backup", **txn.drive_backup("disk0", target, job)["data"])
    txn.wait_jobs(storm.vm, [job])
    target.unlink()


class GuestOnDaemonDrainHang(TxnstormTest):
    """KI-11: the daemon drains a vhost-user-blk export in an iothread while
    the guest writes through it.

    A try is a transaction of a single ``block-dirty-bitmap-add`` (no job,
    no node added: only the drain every transaction begins with,
    ``bdrv_drain_all``).  10.0.13's and 10.2.2's daemons stop answering
    within a few: the main thread polls in ``bdrv_drain_all_begin`` for
    good (the hang is named by that frame, from gdb on the live daemon).

    :avocado: enable
    :avocado: tags=qsd,vhost-user-blk,known-issue
    """

    timeout = 300
    NEEDS_DAEMON = True
    ISSUE = "KI-11"
    TRIES = 100  # at the measured 9 in 114, a miss is 0.03 %: then "no longer reproduces" is earned

    def test_drain_while_the_guest_writes(self):
        fire_until_failure(self, VHOST_ONE_DISK_IN_AN_IOTHREAD, bitmap_add_transaction, self.TRIES)


class GuestOnDaemonBackupAbort(TxnstormTest):
    """KI-12: a backup job of a node exported over vhost-user-blk in an
    iothread while the guest writes through it.

    A try is one ``drive-backup`` (a command of its own, no transaction) of
    the disk, its job waited for; the export has ``fixed-iothread=on``, so the
    backup's filter moves no node (else every backup aborts 10.x in
    ``bdrv_insert_node``, KI-10, right after the step that matters here).
    Creating the target opens a BlockBackend, which takes the graph lock in
    a drain that does not poll (``bdrv_graph_wrlock``): the export's
    ``co_trip`` coroutine is not shut down when the drain ends, and 10.0.13's
    daemon aborts in ``vhost_user_server_attach_aio_context`` (``!co_ctx ||
    co_ctx == ctx``).  10.2.2 drains polling there and hangs instead (KI-11).

    :avocado: enable
    :avocado: tags=qsd,vhost-user-blk,known-issue,backup
    """

    timeout = 300
    NEEDS_DAEMON = True
    ISSUE = "KI-12"
    RELATED = ("KI-11",)  # 10.2.2: the same backup hangs
    TRIES = 40

    def test_backup_while_the_guest_writes(self):
        fire_until_failure(self, VHOST_ONE_DISK_FIXED_IOTHREAD, drive_backup_of_disk0, self.TRIES)


class GuestOnDaemonStallAfterDrain(TxnstormTest):
    """KI-13: after a transaction's drain, the daemon's vhost-user-blk export
    in an iothread stops taking the guest's requests.

    The trigger of ``GuestOnDaemonDrainHang`` (a try is a transaction of a
    single ``block-dirty-bitmap-add``), more of them: on 7.2.22 the
    transaction is answered, and then the guest completes no write for 30 s
    while the daemon's main thread is idle and its iothread polls nothing but
    its own event notifier (gdb: the export's kick handlers are not in its
    poll set).  A device stall of the daemon, named by that idle main loop.

    :avocado: enable
    :avocado: tags=qsd,vhost-user-blk,known-issue,stall
    """

    timeout = 600
    NEEDS_DAEMON = True
    ISSUE = "KI-13"
    RELATED = ("KI-11",)  # 10.0.13 and 10.2.2 hang in the drain first
    TRIES = 300

    def test_guest_writes_after_each_drain(self):
        fire_until_failure(self, VHOST_ONE_DISK_IN_AN_IOTHREAD, bitmap_add_transaction, self.TRIES)
