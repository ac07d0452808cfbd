"""Waiting for the disks to write: QEMU's completed-write counters per disk
(``query-blockstats``), read until every disk has completed new writes.  A
disk that completes none in time is a ``DeviceStalled`` naming it; what
stopped it is the stall oracle's job (``oracles/stall.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from txnstorm.deadline import Deadline
from txnstorm.errors import DeviceStalled


class CountsWrites(Protocol):
    """A QEMU (``Machine``) or what speaks for it (the story's ``Storm``)."""

    def write_ops(self) -> dict[str, int]: ...


def wait_until_writing(vm: CountsWrites, disks: Sequence[str], timeout: float = 30.0) -> dict[str, int]:
    """Return write counters once every disk has completed new writes."""
    first = vm.write_ops()
    deadline = Deadline(timeout)
    while True:
        time.sleep(0.2)
        now = vm.write_ops()
        if all(now.get(d, 0) > first.get(d, 0) for d in disks):
            return now
        if deadline.passed():
            stalled = [d for d in disks if now.get(d, 0) <= first.get(d, 0)]
            failure = DeviceStalled(f"storm wrote nothing to {stalled} within {timeout:.0f} s")
            failure.disks = tuple(stalled)
            raise failure
