"""Reproducers of known QEMU NBD bugs (``known-issues.json``).

Each test runs its trigger against the QEMU under test and lets
``txnstorm.oracles.known_issues`` judge the outcome:

* the listed abort happens on a version listed as affected: WARN with
  "known issue KI-n, still reproduces on QEMU x.y.z" (``self.log.warning``;
  Avocado's exit status stays 0, so ``make check`` stays green);
* QEMU survives every try: PASS, "no longer reproduces", only when the
  issue's listed rate makes a miss in that many tries unlikely (< 1 %);
  otherwise WARN, "not seen this run" with the tries and the chance of a miss;
* any other crash, or the listed one on a version not listed: FAIL.

The label is also in the whiteboard (``results.json``).  A QEMU abort is
seen by its exit (signal and assertion line from ``qemu-stderr.log``), never
as a timeout.  No NBD client, writer or QEMU outlives a test: the writer is
a child ended by PID, QEMU is shut down by the boot context.
"""

from __future__ import annotations

import time
from pathlib import Path

from txnstorm.deadline import Deadline
from txnstorm.scenario.attempts import UntilFailure
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.transactions import actions as txn
from txnstorm.vm.boot import booted
from txnstorm.vm.machine import Machine
from txnstorm.vm.topology import Disk, Topology
from txnstorm.workload import nbd
from txnstorm.workload.nbd_stamps import NbdStampWriter
from txnstorm.workload.stamp_format import StampRegion

ONE_DISK = Topology("nbd-export-in-iothread", (Disk("disk0", iothread="io0", share_rw=True),))
TWO_DISKS = Topology(
    "nbd-exports-in-iothreads",
    (Disk("disk0", iothread="io0", share_rw=True), Disk("disk1", iothread="io1", share_rw=True)),
)


class NbdClientDisconnectIothread(TxnstormTest):
    """KI-1: a client disconnecting from an export whose node is in an iothread.

    :avocado: enable
    :avocado: tags=nbd,known-issue,quick
    """

    timeout = 180
    ISSUE = "KI-1"
    ATTEMPTS = 5  # connect, write, read, disconnect; each followed by a death check

    def test_disconnect(self) -> None:
        attempts = UntilFailure(most=self.ATTEMPTS)
        with self.boot(ONE_DISK) as booted:
            vm = booted.vm
            nbd.start_server(vm)
            link = nbd.export(vm, vm.root_node("disk0"), "disk0", writable=True)
            for attempt in attempts:
                vm.note(f"{self.ISSUE} attempt {attempt}: connect, write, read, disconnect")
                attempts.failed(self._one_client(vm, link) or vm.wait_for_death())
            if attempts.failure is None:
                nbd.remove_export(vm, "disk0")  # QEMU still serves: the export goes cleanly
        crash = attempts.failure or vm.died_at_shutdown()
        outcome = "QEMU aborted" if crash else "QEMU survived"
        self.log.info("%s: %s after %d attempt(s)", self.ISSUE, outcome, attempts.tries)
        self.report(crash, tries=attempts.tries)

    def _one_client(self, vm: Machine, link: str) -> str | None:
        try:
            with nbd.NbdClient(link) as client:
                client.pwrite(b"\xa5" * 4096, 0)
                client.pread(4096, 0)
        except nbd.NbdError:
            crash = vm.wait_for_death()
            if crash is None:
                raise
            return crash
        return None


class NbdWritesDuringSnapshot(TxnstormTest):
    """KI-2: NBD writes to exports in iothreads while blockdev-snapshot-sync runs.

    The host stamp writer writes both exports (one request in flight per
    connection) and ``IDLE_CLIENTS`` more clients sit connected to each
    export, while transactions of blockdev-snapshot-sync on both nodes fire
    back to back.  The drain around each snapshot races with the iothreads
    over the NBD clients' state; on 7.2 that ends in KI-2's assertion or
    first in KI-3's or KI-4's (same race), or in a SIGSEGV, which has no
    signature and is reported as a NEW failure.  The first crash decides;
    a boot that survives ``MAX_ROUNDS`` is followed by a fresh one, within
    ``BUDGET_S`` over all boots.  Clients stay connected until QEMU has
    quit, so their disconnect cannot hit KI-1.

    :avocado: enable
    :avocado: tags=nbd,known-issue,snapshot
    """

    timeout = 240
    ISSUE = "KI-2"
    RELATED = ("KI-3", "KI-4", "KI-6")
    BUDGET_S = 60.0  # all boots together
    # The quick tier's share of the same race: one boot, then this long of snapshot rounds (its
    # boot is not counted: a loaded host's cold boot took 11 s of a 12 s budget, and the rounds
    # 0.4 s).  7c1f51bf38's revert (teeth/upstream-7c1f51bf38-...) aborted 2.6-5.8 s into the
    # rounds (rounds 1-52); 7.2.22 crashes in most boots.
    QUICK_ROUNDS_S = 8.0
    MAX_BOOTS = 10
    MAX_ROUNDS = 600  # snapshot transactions per boot
    IDLE_CLIENTS = 8

    def test_snapshot_while_nbd_writes(self) -> None:
        self._snapshots_while_nbd_writes(self.BUDGET_S)

    def test_snapshot_while_nbd_writes_briefly(self) -> None:
        """The same race in one boot, ``QUICK_ROUNDS_S`` of rounds: NBD clients writing to exports
        in iothreads while a snapshot's drain runs, a shape no other quick test builds.

        :avocado: tags=quick
        """
        self._snapshots_while_nbd_writes(self.BUDGET_S, rounds_s=self.QUICK_ROUNDS_S)

    def _snapshots_while_nbd_writes(self, budget_s: float, rounds_s: float | None = None) -> None:
        """Boots until a crash or ``budget_s`` (boots and rounds); with ``rounds_s``, one boot whose
        rounds run that long once its clients are connected."""
        deadline = Deadline(budget_s)  # the boots' and their rounds'
        attempts = UntilFailure(most=1 if rounds_s else self.MAX_BOOTS, deadline=deadline)
        boots: list[dict[str, object]] = []
        for number in attempts:
            crash, facts = self._one_boot(number, deadline, rounds_s)
            attempts.failed(crash)
            boots.append(facts)
            self.log.info("%s boot %d: %s", self.ISSUE, number, facts)
        self.report(attempts.failure, tries=attempts.tries, boots=boots)

    def _idle_clients(self) -> int:
        return int(self.params.get("idle_clients", default=self.IDLE_CLIENTS))

    def _one_boot(
        self, boot_no: int, deadline: Deadline, rounds_s: float | None = None
    ) -> tuple[str | None, dict[str, object]]:
        """One QEMU: exports, writer, idle clients, snapshot rounds (until ``deadline``, or for
        ``rounds_s`` from the clients' connection); its logs in bootN/."""
        logdir = Path(self.logdir) / f"boot{boot_no}"
        scratch = self.scratch / f"boot{boot_no}"  # removed on PASS with the rest of scratch
        logdir.mkdir()
        scratch.mkdir()
        images = {d.name: self.qemu_img.create(scratch / f"{d.name}.{d.fmt}", d.size, d.fmt) for d in TWO_DISKS.disks}
        region = StampRegion.at_end(min(d.size_bytes for d in TWO_DISKS.disks))
        writer: NbdStampWriter | None = None
        idle: list[nbd.NbdClient] = []
        crash, rounds, generations = None, 0, None
        started = time.monotonic()
        try:
            vm = Machine(self.platform, TWO_DISKS, logdir, images)
            self.kill_at_teardown(vm)  # tearDown kills it by PID should anything escape
            with booted(vm, self.guest_image):
                nbd.start_server(vm)
                links = [nbd.export(vm, vm.root_node(d.name), d.name, writable=True) for d in TWO_DISKS.disks]
                writer = NbdStampWriter(links[0], links[1], region, logdir, keep_open=True).start()
                idle = [nbd.NbdClient(link).connect() for link in links for _ in range(self._idle_clients())]
                vm.note(f"NBD stamp writer and {len(idle)} idle clients connected")
                started = time.monotonic()
                rounds_until = Deadline(rounds_s) if rounds_s else deadline
                crash, rounds = self._snapshot_rounds(vm, writer, scratch, rounds_until)
                if crash is None:
                    generations = writer.stop()
                    vm.note(f"NBD stamp writer stopped after {generations} generations")
            crash = crash or vm.died_at_shutdown()
        finally:
            for client in idle:
                client.close()  # QEMU is gone by now: the disconnect is harmless
            if writer is not None:
                writer.close()
        facts = {
            "rounds": rounds,
            "seconds": round(time.monotonic() - started, 1),
            "generations": generations,
            "crash": crash,
        }
        return crash, facts

    def _snapshot_rounds(
        self, vm: Machine, writer: NbdStampWriter, scratch: Path, deadline: Deadline
    ) -> tuple[str | None, int]:
        """Fire snapshot transactions until QEMU dies or the budget is spent."""
        tops = {d.name: d.node for d in TWO_DISKS.disks}
        rounds = UntilFailure(most=self.MAX_ROUNDS, deadline=deadline)
        for round_no in rounds:
            actions = []
            for disk in TWO_DISKS.disks:
                node = f"{disk.name}-snap{round_no}"
                actions.append(txn.snapshot_sync(tops[disk.name], scratch / f"{node}.qcow2", node))
                tops[disk.name] = node
            try:
                txn.fire_transaction(vm, actions)
            except Exception:
                # QMP can see the socket close before the dying QEMU is
                # reaped: give it a moment to become a crash report.
                crash = vm.wait_for_death()
                if crash is None:
                    raise
                return crash, round_no
            if not vm.is_running():
                return vm.exit_report(), round_no
            if not writer.running():
                crash = vm.wait_for_death()
                if crash:
                    return crash, round_no
                self.fail(f"the NBD stamp writer stopped while QEMU still runs: {writer.err_path.read_text()[-300:]}")
        return None, rounds.tries
