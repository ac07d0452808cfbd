"""Transactions fired at qemu-storage-daemon while NBD clients storm it.

The story: the daemon of the QEMU under test opens three qcow2 disks, all in
one iothread (``io0``), and exports each over NBD (writable, in that
iothread); no guest.  Host NBD clients storm every export (random 4 KiB
writes, 8 in flight each) and the host stamp writer stamps the first and
last disk; every plan that needs no guest fires in turn at the daemon's
QMP.  After the daemon has quit, the captures must be one point in time:
every same-instant pair identical, the NBD stamps consistent.

The control fires the same plans as separate commands: every oracle must
catch it.  A daemon crash or hang is a FAIL of that QEMU (WARN when it is
a listed known issue: on 7.2 the first backup action often aborts the
daemon, KI-8, reproduced by ``DaemonBackupOfExportedNode``); a QEMU with no
daemon beside it CANCELs.
"""

from txnstorm.deadline import Deadline
from txnstorm.errors import QemuDied
from txnstorm.scenario.attempts import UntilFailure
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.transactions import actions as txn
from txnstorm.transactions.plans import PLANS
from txnstorm.vm.topology import Disk, Topology

THREE_EXPORTS_ONE_IOTHREAD = Topology(
    "qsd-3-exports-1-iothread", tuple(Disk(f"disk{i}", iothread="io0") for i in range(3))
)
# The same in the daemon's main loop: backups move no export between
# AioContexts there, so the oracles are checked every run; this pair is the
# quick tier's (in an iothread, 7.2 aborts at the first backup in about half
# the daemons, KI-8, and 10.2.2 in all of them, KI-10: nightly).
THREE_EXPORTS_MAIN_LOOP = Topology("qsd-3-exports-main-loop", tuple(Disk(f"disk{i}", iothread=None) for i in range(3)))


class DaemonNbdStorm(TxnstormTest):
    """NBD clients storm the daemon's exports while the plans fire: exports in an iothread
    (nightly: on 7.2 and 10.2.2 the first backup often aborts the daemon, KI-8/KI-10) and in the
    daemon's main loop (quick), each with its control.

    :avocado: enable
    :avocado: tags=qsd,nbd,snapshot,backup,internal-snapshot
    """

    timeout = 300
    NEEDS_GUEST, NEEDS_DAEMON = False, True  # NBD clients on the daemon, no guest

    def test_one_point_in_time_at_the_daemon(self):
        """:avocado: tags=nightly"""
        self.one_point_in_time(THREE_EXPORTS_ONE_IOTHREAD, storm_of=self.daemon_storm, stamps="nbd")

    def test_separate_commands_are_caught_by_every_oracle(self):
        """:avocado: tags=nightly,control"""
        self.separate_commands_caught(THREE_EXPORTS_ONE_IOTHREAD, storm_of=self.daemon_storm)

    def test_one_point_in_time_exports_in_main_loop(self):
        """:avocado: tags=quick"""
        self.one_point_in_time(THREE_EXPORTS_MAIN_LOOP, storm_of=self.daemon_storm, stamps="nbd")

    def test_separate_commands_are_caught_main_loop(self):
        """:avocado: tags=quick,control"""
        self.separate_commands_caught(THREE_EXPORTS_MAIN_LOOP, storm_of=self.daemon_storm)


class DaemonBackupOfExportedNode(TxnstormTest):
    """KI-8: a backup of a node exported over NBD in an iothread while
    clients write to it.

    ``backup_job_create`` inserts the copy-before-write filter, created in
    the main loop's AioContext; attaching the exported node as its child
    moves the node, with its export, out of the iothread and back
    (``bdrv_try_change_aio_context``), and the export's
    ``blk_aio_attached`` finds a client still receiving a request: 7.2
    aborts, or (KI-9, rarer) segfaults in ``qemu_coroutine_switch``.  It
    mostly happens at a daemon's first backup or not at all, so a try is a
    daemon (its logs in ``daemonN/``): the storm of ``DaemonNbdStorm``,
    then one ``drive-backup`` of disk0 per transaction, back to back,
    ``BACKUPS`` of them; new daemons until one crashes, ``MAX_DAEMONS`` or
    ``BUDGET_S``.

    :avocado: enable
    :avocado: tags=qsd,nbd,known-issue,backup
    """

    timeout = 300
    NEEDS_GUEST, NEEDS_DAEMON = False, True
    ISSUE = "KI-8"
    RELATED = ("KI-9", "KI-10")  # KI-10: 10.2.2 aborts at the same backup, before KI-8 can
    MAX_DAEMONS = 8
    BACKUPS = 10  # per daemon
    BUDGET_S = 90.0

    def test_backup_of_exported_node_while_clients_write(self):
        attempts = UntilFailure(most=self.MAX_DAEMONS, deadline=Deadline(self.BUDGET_S))
        daemons: list[dict[str, object]] = []
        for number in attempts:
            crash, backups = self._one_daemon(number)
            attempts.failed(crash)
            daemons.append({"backups": backups, "crash": crash})
            self.log.info("%s daemon %d: %s", self.ISSUE, number, daemons[-1])
        self.report(attempts.failure, tries=attempts.tries, daemons=daemons)

    def _one_daemon(self, number: int) -> tuple[str | None, int]:
        """One daemon under the storm, ``BACKUPS`` backups: (its crash, the backups fired)."""
        logdir, scratch = self.logdir_path / f"daemon{number}", self.scratch / f"daemon{number}"
        plans = [PLANS["snapshot-sync+drive-backup"]]  # what the capability check asks of the daemon
        backups = UntilFailure(most=self.BACKUPS, failures=(QemuDied,))
        with backups, self.daemon_storm(THREE_EXPORTS_ONE_IOTHREAD, plans, logdir, scratch) as storm:
            storm.still_writing()
            for backup in backups:
                job = f"backup-disk0-t{backup}"
                storm.vm.note(f"{self.ISSUE} backup {backup}: drive-backup of disk0 while clients write")
                target = scratch / f"{job}.qcow2"
                txn.fire_transaction(storm.vm, [txn.drive_backup("disk0", target, job)])
                txn.wait_jobs(storm.vm, [job])
                target.unlink()  # not judged; kept, a WARN run's scratch would grow by GBs
        return backups.failure, backups.tries
