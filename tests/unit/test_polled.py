"""A guest that polls its completions (workload/polled.py): its disks get a poll queue, fio polls
them, and a guest that gives none is said, not raced in vain."""

import dataclasses

import pytest

from txnstorm.vm.ssh import Result
from txnstorm.vm.topology import POLLING_IOTHREAD_POLLED_GUEST, Disk, Topology
from txnstorm.workload.fio import FioJob
from txnstorm.workload.polled import POLLED_FIO, NoPollQueues, give_disks_poll_queues


class FakeGuest:
    def __init__(self, stdout: str, status: int = 0) -> None:
        self.stdout, self.status, self.commands = stdout, status, []

    def run(self, command: str, timeout: float = 60.0) -> Result:
        self.commands.append(command)
        return Result(command, self.status, self.stdout, "")


def test_every_disk_probed_again_with_a_poll_queue():
    guest = FakeGuest("/sys/block/vda/queue/io_poll 1\n/sys/block/vdb/queue/io_poll 1\n")
    give_disks_poll_queues(guest)
    (command,) = guest.commands
    assert "poll_queues" in command and "unbind" in command and "> bind" in command


@pytest.mark.parametrize(
    "stdout,status",
    [("/sys/block/vda/queue/io_poll 1\n/sys/block/vdb/queue/io_poll 0\n", 0), ("", 0), ("", 1)],
)
def test_a_disk_without_a_poll_queue_is_said(stdout, status):
    with pytest.raises(NoPollQueues, match="no poll queue"):
        give_disks_poll_queues(FakeGuest(stdout, status))


def test_the_polled_storm_polls_through_io_uring():
    job = FioJob("storm", {"disk0": "/dev/vda"}, extra=dict(POLLED_FIO))
    lines = job.jobfile().splitlines()
    assert "ioengine=io_uring" in lines and "hipri=1" in lines and "direct=1" in lines
    assert "ioengine=libaio" not in lines


def test_a_polled_storm_needs_a_second_queue_and_vcpu():
    assert POLLING_IOTHREAD_POLLED_GUEST.storm_polled
    with pytest.raises(ValueError, match="polled storm"):
        dataclasses.replace(POLLING_IOTHREAD_POLLED_GUEST, smp=1)
    with pytest.raises(ValueError, match="polled storm"):
        Topology("one-queue", (Disk("disk0", iothread="io0"),), smp=2, storm_polled=True)
