"""An idle guest's iothreads sleep: none spins after a drained section.

The story (``txnstorm/scenario/idle.py``): boot a guest with a virtio-scsi disk on iothread io0
beside a virtio-blk disk on io1 (topology ``scsi-beside-blk``), storm both with fio, snapshot both
in one transaction (each device's drained section: its queues' notifiers detached, then attached
again), stop the storm and let the guest trickle 20 direct writes a second per disk.  Over 3 s
every iothread must be runnable (on a CPU or waiting for one) less than half the time
(``oracles/iothread_cpu``: ``/proc/<qemu>/task/*/schedstat`` of the threads QEMU names ``IO
<id>``; the TCG vCPU threads, busy by nature, are not judged).

The shape of c42c3833e0 ("virtio-scsi: Attach event vq notifier with no_poll", 9.0; 8.1-8.2.1 had
the bug, teeth/upstream-c42c3833e0-virtio-scsi-event-vq-polled): after the first drained section
virtio-scsi's event queue, which the guest keeps full of buffers, was polled again and its iothread
spun at 100 % of a CPU with no I/O.  No request is lost, every point in time holds: only the
thread's time shows it.

Its negative control, in the same boot: every iothread set to poll a second after each event
(``qom-set poll-max-ns``), the same trickle: the virtio-blk disk's iothread must then be judged
busy (on 10.2.2 the scsi controller's spins too; on 7.2.22 it stays asleep, so it is recorded, not
judged).  Measured
beside two CPU hogs too (docs/measurements.md): the runnable share, not the CPU share, is what
keeps the verdict when a spinning thread gets only part of a core.
"""

from txnstorm.errors import TxnstormError
from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.idle import CONTROL_POLL_NS, blk_iothreads, idle_after_a_drain
from txnstorm.vm import caps
from txnstorm.vm.topology import TOPOLOGIES

TOPOLOGY = TOPOLOGIES["scsi-beside-blk"]


class IdleIothreadsSleep(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=quick,idle,cpu,scsi,dataplane
    """

    timeout = 240

    def test_iothreads_sleep_while_the_guest_trickles(self) -> None:
        self.require(commands=["qom-set"], actions=["blockdev-snapshot-sync"], **caps.needs_of(TOPOLOGY))
        with self.boot(TOPOLOGY) as booted:
            windows = idle_after_a_drain(booted, self.scratch, self.logdir_path)
        for share in windows.quiet:
            self.log.info("idle: %s", share.describe())
        for share in windows.control:
            self.log.info("control: %s", share.describe())
        self.record(
            idle={s.name: round(s.runnable, 3) for s in windows.quiet},
            idle_cpu={s.name: round(s.cpu, 3) for s in windows.quiet},
            control={s.name: round(s.runnable, 3) for s in windows.control},
        )  # fmt: skip
        if len(windows.quiet) != len(TOPOLOGY.machine_iothreads):  # no thread named "IO <id>": the suite's fault
            raise TxnstormError(f"measured {[s.name for s in windows.quiet]}, not every iothread of {TOPOLOGY.name}")
        if busy := windows.busy():
            self.fail(
                "an iothread spins while the guest only trickles writes (after a drained section): "
                f"{'; '.join(s.describe() for s in busy)} (QEMU {self.sut.version})"
            )
        if missed := windows.control_missed(blk_iothreads(TOPOLOGY)):
            self.fail(
                f"negative control: iothreads polling {CONTROL_POLL_NS} ns after each event were NOT judged busy; "
                f"the oracle is too weak: {'; '.join(s.describe() for s in missed)}"
            )
