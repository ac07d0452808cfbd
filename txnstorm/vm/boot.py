"""Boot: a Machine plus an SSH session to its guest, as one context manager."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from txnstorm.deadline import Deadline
from txnstorm.errors import DeadlineExceeded, QemuDied, QemuFailure, QemuHung, TxnstormError
from txnstorm.host.assets import GuestImage
from txnstorm.vm.boot_states import LOAD_S, STATE, BootStates, StateUnusable, zstd
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
    alive_and_answering = vm.watchdog(f"the guest console's {marker!r}")  # a stopped QEMU: named now
    while not deadline.passed():
        alive_and_answering()
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
    how: str = "booted"  # "booted" (cold), or "restored" (a saved guest of this shape, boot_states)


@contextlib.contextmanager
def booted(
    vm: Machine, guest: GuestImage, ssh_deadline_s: float = 60.0, states: BootStates | None = None
) -> Iterator[Booted]:
    """Launch ``vm``, wait for SSH to ``guest`` (its keys); always shut QEMU
    down and close SSH.  With ``states``, a saved guest of this shape is loaded instead of a
    boot (the first of a shape boots and is saved; see ``boot_states``).  Register ``vm`` for a
    last-resort kill before this (a test's tearDown can then end it even when the boot is
    interrupted)."""
    session: GuestSession | None = None
    try:
        session, how = bring_up(vm, guest, ssh_deadline_s, states)
        seconds = time.monotonic() - vm.launched_at
        vm.up = True
        vm.note(f"guest reachable over SSH after {seconds:.2f} s ({how})")
        log.info("guest up after %.2f s (accel %s, %s)", seconds, vm.accel, how)
        yield Booted(vm, session, seconds, how)
    except DeadlineExceeded as hang:
        # A hang: keep every QEMU thread's stack before QEMU is killed.  A
        # guest that never came up is the suite's problem (ERROR) unless QEMU
        # itself stopped answering: then it is QEMU's hang (FAIL).
        failure = hang
        if not isinstance(hang, QemuFailure) and not vm.answers_qmp():
            failure = QemuHung(f"{hang}; QEMU does not answer QMP either", stage=vm.stage)
        vm.keep_backtrace(failure)
        if failure is hang:
            raise
        raise failure from hang
    finally:
        if session is not None:
            session.close()
        vm.shutdown()


def cold_boot(vm: Machine, guest: GuestImage, ssh_deadline_s: float) -> GuestSession:
    vm.launch()
    deadline = Deadline(ssh_deadline_s)
    wait_console(vm, READY_MARKER, ssh_deadline_s)
    session = GuestSession(vm.ssh_port, guest.private_key, guest.host_key)
    session.wait_ready(deadline.remaining(at_least=5.0), alive=vm.check_alive)
    return session


def restore(vm: Machine, guest: GuestImage, states: BootStates, state: Path) -> GuestSession:
    states.load(vm, state)
    session = GuestSession(vm.ssh_port, guest.private_key, guest.host_key)
    try:
        session.wait_ready(LOAD_S, alive=vm.check_alive)
        # The saved guest's page cache knew other images (their first sectors), and its clock
        # stopped when it was saved.
        session.run(f"echo 3 > /proc/sys/vm/drop_caches; date -s @{int(time.time())} >/dev/null || true",
                    timeout=10).check()  # fmt: skip
    except BaseException:
        session.close()
        raise
    return session


def bring_up(
    vm: Machine, guest: GuestImage, ssh_deadline_s: float, states: BootStates | None
) -> tuple[GuestSession, str]:
    """The guest up and answering SSH: restored when ``states`` has (or can now save) its
    shape, else booted.  A boot's failure is the test's; a restore's only costs a cold boot."""
    if states is not None and zstd() is None:
        log.info("zstd is not installed: every guest boots cold (make setup installs it)")
        states = None
    key = states.key(vm, guest) if states is not None else None
    if states is None or key is None:
        return cold_boot(vm, guest, ssh_deadline_s), "booted"
    try:
        state = states.verified(key)
    except StateUnusable as unusable:
        log.info("%s; booting and saving it again", unusable)
        state = None
    if state is None:
        session = cold_boot(vm, guest, ssh_deadline_s)
        session.close()
        try:
            states.save(vm, key)
        except TxnstormError as exc:
            log.info("the booted guest could not be saved (%s); booting it again", exc)
            vm.shutdown()
            return cold_boot(vm, guest, ssh_deadline_s), "booted (not saved)"
        vm.shutdown()
        state = states.entry(key) / STATE
    try:
        return restore(vm, guest, states, state), "restored"
    except TxnstormError as exc:
        if isinstance(exc, QemuHung) or (isinstance(exc, QemuDied) and (vm.returncode or 0) < 0):
            raise  # killed by a signal or hung loading its own saved guest: QEMU's failure, not a stale state
        log.info("the saved guest %s did not load (%s); removed, booting cold", key, exc)
        vm.shutdown(hard=True)
        states.forget(key)
        return cold_boot(vm, guest, ssh_deadline_s), "booted (restore failed)"
