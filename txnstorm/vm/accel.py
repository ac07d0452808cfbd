"""Choose the accelerator: ``auto`` probes KVM with a real boot, then falls back.

``/dev/kvm`` existing is not enough (nested hypervisors may not run stock
kernels), so ``auto`` boots the guest under KVM once and requires SSH to
answer.  The verdict is cached per QEMU binary, guest and host kernel.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from txnstorm.errors import QemuDied, QemuRefusedCommandLine, TxnstormError, UserError
from txnstorm.host.assets import GuestImage
from txnstorm.host.scratch import private_dir
from txnstorm.host.sut import SystemUnderTest
from txnstorm.settings import ACCEL_CHOICES
from txnstorm.vm.qemu_process import Keeping
from txnstorm.vm.topology import Topology

CHOICES = ACCEL_CHOICES
PROBE_DEADLINE_S = 20.0
REPROBE_HINT = "re-probe: scripts/txnstorm accel --reprobe"
TIMEOUT_KEPT_S = 30 * 60  # a probe that timed out (a busy host?) is trusted this long: one run, not for good


@dataclass(frozen=True)
class AccelChoice:
    accel: str
    reason: str


def kvm_device_problem(dev: str = "/dev/kvm") -> str | None:
    if not os.path.exists(dev):
        return f"{dev} does not exist"
    if not os.access(dev, os.R_OK | os.W_OK):
        return f"{dev} is not readable and writable by this user"
    return None


def _cache_file(sut: SystemUnderTest, image: GuestImage, cache: Path) -> Path:
    st = sut.qemu.stat()
    key = f"{sut.qemu}:{st.st_size}:{st.st_mtime_ns}:{image.digest}:{platform.release()}"
    return cache / "accel" / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")


@dataclass(frozen=True)
class ProbeFailure:
    reason: str
    final: bool  # QEMU refused or crashed under KVM; a timeout (a busy host?) is not final


def probe_kvm(
    sut: SystemUnderTest, image: GuestImage, logdir: Path, keeping: Keeping | None = None, trace: tuple[str, ...] = ()
) -> ProbeFailure | None:
    """Boot under KVM; return None if the guest answered SSH, else why not (``keeping``, ``trace``:
    the user's QMP window, kept cores and trace events, as for any machine)."""
    from txnstorm.vm.boot import booted  # local: boot imports machine, keep this module light
    from txnstorm.vm.machine import Machine, Platform

    try:
        keeping = keeping or Keeping()
        platform = Platform(sut, image.boot_files(), "kvm", trace, keeping.cores, keeping.qmp_answer_s)
        vm = Machine(platform, Topology("kvm-probe", ()), logdir, {})
        with booted(vm, image, ssh_deadline_s=PROBE_DEADLINE_S):
            return None
    except TxnstormError as exc:
        # The probe's log dir is temporary: evidence named in it is gone.
        # (" (QEMU main thread in its main loop (idle); backtrace: qemu-backtrace.txt)")
        reason = re.sub(r" \((?:QEMU )?(?:main thread in .*?; )?backtrace: [^)]*\)", "", str(exc))
        reason = re.sub(r" \(console log: [^)]*\)", "", reason)
        return ProbeFailure(reason, final=isinstance(exc, (QemuDied, QemuRefusedCommandLine)))


def _cached(cache: Path) -> AccelChoice | None:
    """The kept verdict, unless it is a timeout's that has expired."""
    try:
        cached = json.loads(cache.read_text())
        if cached.get("expires_at", float("inf")) < time.time():
            return None
        until = f"; a timeout, kept only until {_utc(cached['expires_at'])}" if "expires_at" in cached else ""
        return AccelChoice(cached["accel"], f"{cached['reason']} (probed {cached['taken_at']}{until}; {REPROBE_HINT})")
    except (OSError, ValueError, KeyError):
        return None


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def choose(  # noqa: PLR0913 - the request, what it is probed with, and where verdicts are kept
    requested: str,
    sut: SystemUnderTest,
    image: GuestImage,
    say: Callable[[str], None] = print,
    reprobe: bool = False,
    *,
    cache: Path,
    keeping: Keeping | None = None,
    trace: tuple[str, ...] = (),
) -> AccelChoice:
    """The accelerator to use.  ``auto`` keeps a probe's verdict per QEMU
    binary, guest and host kernel, with the time it was taken; a probe that
    failed by a timeout (a busy host is not a broken KVM) is kept only for
    ``TIMEOUT_KEPT_S`` (the tests of one run), and ``reprobe`` forgets the
    kept one first; ``keeping`` and ``trace`` watch the probe's QEMU as the user asked."""
    requested = (requested or "auto").lower()
    if requested not in CHOICES:
        raise UserError(f"ACCEL={requested} is not one of {', '.join(CHOICES)}")
    if requested == "tcg":
        return AccelChoice("tcg", "requested")
    problem = kvm_device_problem()
    if requested == "kvm":
        if problem:
            raise UserError(f"ACCEL=kvm but {problem}; use ACCEL=tcg or ACCEL=auto")
        return AccelChoice("kvm", "requested")
    if problem:
        choice = AccelChoice("tcg", f"KVM unusable: {problem}")
        say(f"accel auto: {choice.reason}; using TCG")
        return choice
    verdict = _cache_file(sut, image, cache)
    if reprobe:
        verdict.unlink(missing_ok=True)
    elif cached := _cached(verdict):
        return cached
    with private_dir("kvm-probe") as logdir:
        failure = probe_kvm(sut, image, logdir, keeping, trace)
    if failure is None:
        choice = AccelChoice("kvm", "KVM probe booted the guest to SSH")
    else:
        choice = AccelChoice("tcg", f"KVM probe failed: {failure.reason}")
    say(f"accel auto: {choice.reason}; using {choice.accel.upper()}")
    record = {"accel": choice.accel, "reason": choice.reason, "taken_at": _utc(time.time())}
    if failure is not None and not failure.final:
        # A busy host is not a broken KVM: keep it for one run's tests, not for good.
        record["expires_at"] = time.time() + TIMEOUT_KEPT_S
        say(f"accel auto: a probe that timed out is kept for {TIMEOUT_KEPT_S // 60} min only, then probed again")
    verdict.parent.mkdir(parents=True, exist_ok=True)
    verdict.write_text(json.dumps(record) + "\n")
    return _cached(verdict) or choice
