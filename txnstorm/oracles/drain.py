"""Drained means still: while the VM is stopped, no device write completes.

The content of each disk is read *through QEMU* (a read-only NBD export of
its node), so what is checked is QEMU's view, not an image file QEMU may
still be writing.  Write counters come from ``query-blockstats`` of each
device.  After ``cont`` the storm must resume: a disk that stays silent is
named, never waited on forever.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from txnstorm.errors import DeadlineExceeded, DeviceStalled
from txnstorm.vm.machine import Machine
from txnstorm.vm.write_counters import wait_until_writing
from txnstorm.workload import nbd

CHUNK = 4 << 20


class StormStalled(DeviceStalled):
    """After cont, a disk's storm never resumed."""


def content_digest(client: nbd.NbdClient) -> str:
    """sha256 of everything the export shows (read in 4 MiB requests)."""
    h = hashlib.sha256()
    size = client.size
    for offset in range(0, size, CHUNK):
        h.update(client.pread(min(CHUNK, size - offset), offset))
    return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """What QEMU shows of every disk at one moment."""

    digests: dict[str, str]
    write_ops: dict[str, int]


def read_through(vm: Machine, clients: dict[str, nbd.NbdClient]) -> Snapshot:
    return Snapshot({d: content_digest(c) for d, c in clients.items()}, vm.write_ops())


def changed(first: Snapshot, second: Snapshot) -> list[str]:
    """Disks whose content or completed-write count differs between two reads."""
    return sorted(
        d
        for d in first.digests
        if first.digests[d] != second.digests[d] or first.write_ops.get(d) != second.write_ops.get(d)
    )


def export_read_only(vm: Machine, disks: Sequence[str]) -> dict[str, str]:
    """A read-only NBD export of each disk's current node: {disk: uri}."""
    nbd.start_server(vm)
    return {d: nbd.export(vm, vm.root_node(d), f"ro-{d}", writable=False) for d in disks}


def wait_resumed(vm: Machine, disks: Sequence[str], timeout: float = 20.0) -> dict[str, int]:
    try:
        return wait_until_writing(vm, disks, timeout=timeout)
    except DeadlineExceeded as exc:
        raise StormStalled(f"after cont the storm did not resume: {exc}") from None
