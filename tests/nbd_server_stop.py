"""nbd-server-stop while clients are connected: every client goes, QEMU stays.

The story: boot a guest whose disk is also exported over QEMU's NBD server, storm it with fio
from the guest; on the host one client writes to the export and another has connected but not
finished its handshake (libnbd's option mode: a slow client, a port scan, a TLS client without
the secret).  Management stops the server.  ``nbd-server-stop`` must end both connections (the
writer's next write fails, the negotiating client is cut off), QEMU must survive the clients
going away, and the guest must keep writing; then the server starts again and the next round
comes.  The export's lifecycle under load is a shape no transaction builds.

It is what CVE-2024-7409 broke (fixed in 9.1 by 3e7ef738c8, "nbd/server: CVE-2024-7409: Close
stray clients at server-stop"; teeth/upstream-3e7ef738c8-*): the server forgot the clients still
negotiating, and QEMU crashed when they went away after the stop.

On Debian 12's 7.2.22 nbd-server-stop never answers with a client in its handshake (KI-15: the
7.2.x backport of that fix waits for a connection it never polls): WARN, "still reproduces".

The "cut off" check has its own control, in every round: before the stop, the same check must
see the negotiating client still connected.
"""

from txnstorm.errors import QemuDied, TxnstormError
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.vm.topology import Disk, Topology
from txnstorm.workload import nbd

EXPORTED_DISK = Topology("nbd-export-main-loop", (Disk("disk0", share_rw=True),))
BLOCK = b"\x5a" * 4096


class NbdServerStopsUnderClients(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=quick,nbd
    """

    timeout = 180
    ROUNDS = 3
    DEATH_WAIT_S = 1.0  # after the clients went: a crash of their close callback shows within this
    STOP_ANSWER_S = 30.0  # nbd-server-stop answers in milliseconds; 7.2.22 never does (KI-15)

    def test_server_stop_ends_every_client(self) -> None:
        cut_off = []
        with self.storm(EXPORTED_DISK, stamps=False) as storm:
            vm = storm.vm
            for round_no in range(1, self.ROUNDS + 1):
                nbd.start_server(vm)
                link = nbd.export(vm, vm.root_node("disk0"), "disk0", writable=True)
                with nbd.NbdClient(link) as writer, nbd.NegotiatingClient(link) as negotiating:
                    writer.pwrite(BLOCK, round_no * len(BLOCK))
                    if not negotiating.still_connected():
                        raise TxnstormError(f"round {round_no}: control: the check saw no client before the stop")
                    vm.note(f"round {round_no}: nbd-server-stop with a writing and a negotiating client")
                    vm.cmd("nbd-server-stop", _timeout=self.STOP_ANSWER_S)
                    cut_off.append(not negotiating.still_connected())
                    writer_stopped = self._write_refused(writer, round_no)
                vm.note(f"round {round_no}: both clients gone")
                if (crash := vm.wait_for_death(self.DEATH_WAIT_S)) is not None:
                    raise QemuDied(crash, stage=vm.stage)
                self.assertTrue(writer_stopped, f"round {round_no}: a client still wrote after nbd-server-stop")
                storm.still_writing()
        self.log.info("negotiating client cut off by nbd-server-stop in rounds: %s", cut_off)
        self.record(rounds=self.ROUNDS, cut_off=sum(cut_off))
        kept = [n for n, cut in enumerate(cut_off, start=1) if not cut]
        self.assertFalse(kept, f"nbd-server-stop left a client in its handshake connected in rounds {kept}")

    @staticmethod
    def _write_refused(writer: nbd.NbdClient, round_no: int) -> bool:
        try:
            writer.pwrite(BLOCK, round_no * len(BLOCK))
        except nbd.NbdError:
            return True
        return False
