"""Boot: a Machine plus an SSH session to its guest, as one context manager."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .assets import GuestImage
from .guest import GuestSession
from .machine import Machine
from .sut import SystemUnderTest
from .topology import Topology

log = logging.getLogger("txnstorm.boot")


@dataclass
class Booted:
    vm: Machine
    guest: GuestSession
    boot_seconds: float  # QEMU start to first successful SSH command


@contextlib.contextmanager
def booted(
    sut: SystemUnderTest,
    topology: Topology,
    image: GuestImage,
    accel: str,
    logdir: Path,
    images: dict[str, Path],
    ssh_deadline_s: float = 60.0,
) -> Iterator[Booted]:
    """Launch QEMU, wait for SSH; always shut QEMU down and close SSH."""
    vm = Machine(sut, topology, image.boot_files(), accel, logdir, images)
    session: GuestSession | None = None
    try:
        vm.launch()
        session = GuestSession(vm.ssh_port, image.private_key, image.host_key)
        session.wait_ready(ssh_deadline_s, alive=vm.check_alive)
        seconds = time.monotonic() - vm.launched_at
        vm.note(f"guest reachable over SSH after {seconds:.2f} s")
        log.info("guest up after %.2f s (accel %s)", seconds, accel)
        yield Booted(vm, session, seconds)
    finally:
        if session is not None:
            session.close()
        vm.shutdown()
