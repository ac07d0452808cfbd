"""A failed write parked by werror=stop: a snapshot while stopped, another right after cont.

The story (``txnstorm/scenario/parked_write.py``): boot a guest with one virtio-blk dataplane disk
(``werror=stop``; its write at 60 MiB fails once), storm the disk's first 56 MiB with fio, and let
the guest write a pattern at 60 MiB: QEMU must stop with an I/O error and hold the write.  While
stopped, one transaction snapshots the disk and backs it up; ``cont``, and at once another
snapshots the new top and backs it up, racing the parked write's restart in the iothread.  The
guest's write must then succeed and the storm go on.

Verified once QEMU quit: each round's frozen base equals its backup; the base frozen while stopped
lacks the parked write (a stopped VM writes nothing) and the final image holds it (``cont`` did
complete it).  The last two read the same block and expect opposite answers, each the other's
negative control: a reader that always, or never, finds the pattern fails one of them.

Reaches what no other test does (docs/teeth.md, "neither"): ``virtio_blk_handle_rw_error``, and
``virtio_blk_dma_restart_cb/_bh``, whose ``blk_inc/dec_in_flight`` make a drain wait for the
restarted requests.
"""

from txnstorm.scenario.harness import TxnstormTest
from txnstorm.scenario.parked_write import TOPOLOGY, park_a_write_and_snapshot_around_it, parked_write_checks
from txnstorm.vm import caps


class ParkedWriteAcrossTransactions(TxnstormTest):
    """
    :avocado: enable
    :avocado: tags=quick,werror,snapshot,backup,dataplane
    """

    timeout = 300

    def test_a_parked_write_lands_after_cont_and_not_in_the_stopped_snapshot(self) -> None:
        self.require(actions=["blockdev-snapshot", "drive-backup"], **caps.needs_of(TOPOLOGY))
        with self.boot(TOPOLOGY) as booted:
            run = park_a_write_and_snapshot_around_it(booted, self.scratch, self.logdir_path, self.qemu_img)
        self.log.info("stopped: %s (status %s)", run.stopped, run.status)
        checks = parked_write_checks(run, self.qemu_img, self.scratch)
        for check in checks:
            self.log.info("oracle: %s", check.describe())
        self.record(stopped=run.stopped, status=run.status, checks=[c.describe() for c in checks])
        self.assertEqual(run.status, "io-error", f"QEMU stopped as {run.status!r}, not for the write's I/O error")
        wrong = [c.describe() for c in checks if not c.ok]
        self.assertFalse(wrong, "the parked write broke a point in time or was lost:\n" + "\n".join(wrong))
