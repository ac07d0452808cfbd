"""A guest that polls its completions: virtio-blk poll queues and fio's io_uring ``hipri``.

Under TCG a guest races a QMP command poorly: the command holds the big lock, so no interrupt
reaches the guest and it cannot refill its queue as the iothread completes writes.  A KVM guest
gets its completions anyway (irqfd); a guest that polls its completion ring gets them here too.
Linux's virtio-blk gives a disk ``poll_queues`` polled queues beside its default one when it is
probed; the guest's disks are probed at boot, so they are unbound and bound again.
"""

from __future__ import annotations

from txnstorm.errors import TxnstormError
from txnstorm.vm.ssh import GuestSession

# fio's options for a polled storm: io_uring, completions reaped by polling (needs O_DIRECT).
POLLED_FIO = {"ioengine": "io_uring", "hipri": "1"}

_GIVE_POLL_QUEUES = (
    "echo 1 > /sys/module/virtio_blk/parameters/poll_queues && cd /sys/bus/virtio/drivers/virtio_blk && "
    "for n in virtio*; do echo $n > unbind && echo $n > bind || exit 1; done && "
    "for q in /sys/block/vd*/queue/io_poll; do echo $q $(cat $q); done"
)


class NoPollQueues(TxnstormError):
    """The guest did not give its disks a poll queue (a kernel without polled virtio-blk)."""


def give_disks_poll_queues(guest: GuestSession) -> None:
    """Every virtio-blk disk of the guest probed again with one poll queue; raises if one has none."""
    result = guest.run(_GIVE_POLL_QUEUES)
    polled = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines() if " " in line)
    if result.status != 0 or not polled or any(v != "1" for v in polled.values()):
        raise NoPollQueues(
            f"the guest's virtio-blk disks got no poll queue (exit {result.status}): "
            f"{result.stdout.strip() or result.stderr.strip()}"
        )
