"""Transactions while a host NBD client and the guest both write.

The story: boot a guest with two main-loop disks exported over QEMU's NBD
server and a dataplane disk between them; fio storms all three from the
guest, the guest stamp writer and the host NBD stamp writer (libnbd, one
dependent write in flight, thousands of generations per second) stamp the
two exported disks, which the guest also writes (write sharing).  Every
plan of the matrix fires in turn; the captures must be one point in time for
both stamp writers and for every same-instant pair.

Under TCG the host client is the writer that can race a transaction (the
guest waits for the lock the QMP command holds).  The control fires the
same plans as separate commands: every oracle must catch it, the NBD stamps
included.  Exports in iothreads are the known issues KI-2/KI-3/KI-6
(tests/nbd_known_issues.py).
"""

from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.story import every_round_fired
from txnstorm.transactions.plans import PLANS
from txnstorm.vm.topology import NBD_WITNESSES_MAIN_LOOP

EVERY_PLAN = list(PLANS.values())


class NbdAndGuestStorm(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=quick,nbd,snapshot,backup,internal-snapshot,dataplane
    """

    timeout = 600

    def test_one_point_in_time_for_nbd_and_guest_writers(self):
        rounds = self.rounds(EVERY_PLAN)
        storm = every_round_fired(self.storm(NBD_WITNESSES_MAIN_LOOP, rounds, nbd_stamps=True), rounds)
        findings = self.verify(storm)
        self.assertTrue(any(f.oracle.startswith("cross-disk stamps/nbd") for f in findings), "NBD stamps unchecked")
        self.assert_one_point_in_time(findings)


class NbdAndGuestStormControl(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=quick,nbd,snapshot,backup,internal-snapshot,dataplane,control
    """

    timeout = 600

    def test_separate_commands_are_caught_by_every_oracle(self):
        rounds = self.rounds(EVERY_PLAN)
        storm = every_round_fired(self.storm(NBD_WITNESSES_MAIN_LOOP, rounds, nbd_stamps=True), rounds, atomic=False)
        self.assert_every_oracle_caught(self.verify(storm))
