"""Boot: a Machine plus an SSH session to its guest, as one context manager."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from txnstorm.deadline import Deadline
from txnstorm.errors import DeadlineExceeded, QemuFailure, QemuHung
from txnstorm.host.assets import GuestImage
from txnstorm.vm.machine import Machine
from txnstorm.vm.ssh import GuestSession

log = logging.getLogger("txnstorm.vm.boot")

READY_MARKER = "txnstorm-guest: ready"  # printed by guests/*/init once dropbear listens


def wait_console(vm: Machine, marker: str, timeout: float) -> float:
    """Wait until the guest console shows ``marker``; QEMU dying ends the wait.

    Connecting to the forwarded port earlier only reaches slirp, which
    accepts and then stalls the SSH banner: the marker is the honest signal.
    """
    start, deadline = time.monotonic(), Deadline(timeout)
    while not deadline.passed():
        vm.check_alive()
        try:
            if marker in vm.console_log.read_text(errors="replace"):
                return time.monotonic() - start
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise DeadlineExceeded(
        f"guest console never showed {marker!r} within {timeout:.0f} s (console log: {vm.console_log})"
    )


@dataclass
class Booted:
    vm: Machine
    guest: GuestSession
    boot_seconds: float  # QEMU start to first successful SSH command


@contextlib.contextmanager
def booted(vm: Machine, guest: GuestImage, ssh_deadline_s: float = 60.0) -> Iterator[Booted]:
    """Launch ``vm``, wait for SSH to ``guest`` (its keys); always shut QEMU
    down and close SSH.  Register ``vm`` for a last-resort kill before this
    (a test's tearDown can then end it even when the boot is interrupted)."""
    session: GuestSession | None = None
    try:
        vm.launch()
        deadline = Deadline(ssh_deadline_s)
        wait_console(vm, READY_MARKER, ssh_deadline_s)
        session = GuestSession(vm.ssh_port, guest.private_key, guest.host_key)
        session.wait_ready(deadline.remaining(at_least=5.0), alive=vm.check_alive)
        seconds = time.monotonic() - vm.launched_at
        vm.note(f"guest reachable over SSH after {seconds:.2f} s")
        log.info("guest up after %.2f s (accel %s)", seconds, vm.accel)
        yield Booted(vm, session, seconds)
    except DeadlineExceeded as hang:
        # A hang: keep every QEMU thread's stack before QEMU is killed.  A
        # guest that never came up is the suite's problem (ERROR) unless QEMU
        # itself stopped answering: then it is QEMU's hang (FAIL).
        failure = hang
        if not isinstance(hang, QemuFailure) and not vm.answers_qmp():
            failure = QemuHung(f"{hang}; QEMU does not answer QMP either")
        vm.keep_backtrace(failure)
        if failure is hang:
            raise
        raise failure from hang
    finally:
        if session is not None:
            session.close()
        vm.shutdown()
