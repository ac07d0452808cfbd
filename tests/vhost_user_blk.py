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

from txnstorm.errors import DeviceStalled, QemuDied, QemuHung
from txnstorm.scenario.attempts import UntilFailure
from txnstorm.scenario.harness import EveryPlanStory, GuestOnDaemonTest, KnownIssueTest
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


class GuestOnDaemonStory(EveryPlanStory, GuestOnDaemonTest):
    """The story on one topology: boot on the daemon, storm, fire every plan, verify.

    :avocado: disable
    """

    timeout = 600
    STAMPS = "guest"
    story_storm = GuestOnDaemonTest.guest_on_daemon_storm


class GuestOnVhostUserBlk(GuestOnDaemonStory):
    """
    :avocado: enable
    :avocado: tags=qsd,vhost-user-blk,snapshot,backup,internal-snapshot
    """

    def test_one_point_in_time_exports_in_main_loop(self):
        """About 20 s on every QEMU measured: the quick tier's.

        :avocado: tags=quick
        """
        self.one_point_in_time_on(VHOST_MAIN_LOOP)

    def test_one_point_in_time_exports_in_an_iothread(self):
        """The daemon's dataplane: 10.0.13 and 10.2.2 hang in the first rounds (KI-11), 90 s.

        :avocado: tags=nightly
        """
        self.one_point_in_time_on(VHOST_ONE_IOTHREAD)


class GuestOnVhostUserBlkControl(GuestOnDaemonStory):
    """
    :avocado: enable
    :avocado: tags=qsd,vhost-user-blk,snapshot,backup,internal-snapshot,control
    """

    def test_separate_commands_are_caught_exports_in_main_loop(self):
        """:avocado: tags=quick"""
        self.separate_commands_caught_on(VHOST_MAIN_LOOP)

    def test_separate_commands_are_caught_exports_in_an_iothread(self):
        """10.0.13 aborts at the first backup (KI-12), 10.2.2 hangs (KI-11).

        :avocado: tags=nightly
        """
        self.separate_commands_caught_on(VHOST_ONE_IOTHREAD)


# One disk exported in an iothread: the smallest shape that hangs 10.2.2 (KI-11).
VHOST_ONE_DISK_IN_AN_IOTHREAD = Topology("vhost-user-blk-one-disk-one-iothread", vhost_disks("io0", count=1))
# The same export with fixed-iothread=on: a backup job then moves no node (KI-10 needs the move).
VHOST_ONE_DISK_FIXED_IOTHREAD = Topology(
    "vhost-user-blk-one-disk-fixed-iothread",
    (Disk("disk0", bus="vhost-user-blk", iothread="io0", pci_slot=FIRST_FIXED_PCI_SLOT, fixed_iothread=True),),
)


class GuestOnDaemonKnownIssue(GuestOnDaemonTest, KnownIssueTest):
    """A daemon reproducer: the storm of ``GuestOnVhostUserBlk`` on one disk
    exported in an iothread, then ``TRIES`` triggers, each answered and
    followed by the guest writing again, until the daemon hangs or dies.

    :avocado: disable
    """

    timeout = 300
    TRIES = 40
    TOPOLOGY = VHOST_ONE_DISK_IN_AN_IOTHREAD

    def trigger(self, storm: Storm, number: int) -> None:
        raise NotImplementedError

    def fire_until_failure(self) -> None:
        """Up to ``TRIES`` triggers (``-p tries=N``), until the daemon hangs, dies or stalls."""
        attempts = UntilFailure(
            most=int(self.params.get("tries", default=self.TRIES)), failures=(QemuHung, QemuDied, DeviceStalled)
        )
        with attempts, self.guest_on_daemon_storm(self.TOPOLOGY, []) as storm:
            storm.still_writing()
            for number in attempts:
                self.trigger(storm, number)
                storm.still_writing()
        self.report(attempts.failure, tries=attempts.tries)


class GuestOnDaemonDrainHang(GuestOnDaemonKnownIssue):
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

    ISSUE = "KI-11"
    TRIES = 100  # at the measured 9 in 114, a miss is 0.03 %: then "no longer reproduces" is earned

    def test_drain_while_the_guest_writes(self):
        self.fire_until_failure()

    def trigger(self, storm: Storm, number: int) -> None:
        storm.vm.note(f"{self.ISSUE} try {number}: a transaction of block-dirty-bitmap-add while the guest writes")
        txn.fire_transaction(storm.vm, [txn.dirty_bitmap_add("disk0", f"try-{number}")])


class GuestOnDaemonBackupAbort(GuestOnDaemonKnownIssue):
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

    ISSUE = "KI-12"
    RELATED = ("KI-11",)  # 10.2.2: the same backup hangs
    TOPOLOGY = VHOST_ONE_DISK_FIXED_IOTHREAD

    def test_backup_while_the_guest_writes(self):
        self.fire_until_failure()

    def trigger(self, storm: Storm, number: int) -> None:
        job = f"ki12-backup-{number}"
        target = self.scratch / f"{job}.qcow2"
        storm.vm.note(f"{self.ISSUE} try {number}: drive-backup of disk0 while the guest writes")
        storm.vm.cmd("drive-backup", **txn.drive_backup("disk0", target, job)["data"])
        txn.wait_jobs(storm.vm, [job])
        target.unlink()


class GuestOnDaemonStallAfterDrain(GuestOnDaemonKnownIssue):
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

    ISSUE = "KI-13"
    RELATED = ("KI-11",)  # 10.0.13 and 10.2.2 hang in the drain first
    TRIES = 300
    timeout = 600

    def test_guest_writes_after_each_drain(self):
        self.fire_until_failure()

    trigger = GuestOnDaemonDrainHang.trigger
