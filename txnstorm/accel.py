"""Choose the accelerator: ``auto`` probes KVM with a real boot, then falls back.

``/dev/kvm`` existing is not enough (nested hypervisors may not run stock
kernels), so ``auto`` boots the guest under KVM once and requires SSH to
answer.  The verdict is cached per QEMU binary, guest and host kernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .assets import GuestImage, cache_root
from .errors import TxnstormError, UserError
from .scratch import private_dir
from .sut import SystemUnderTest
from .topology import Topology

CHOICES = ("auto", "kvm", "tcg")
PROBE_DEADLINE_S = 20.0


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


def _cache_file(sut: SystemUnderTest, image: GuestImage) -> Path:
    st = sut.qemu.stat()
    key = f"{sut.qemu}:{st.st_size}:{st.st_mtime_ns}:{image.digest}:{platform.release()}"
    return cache_root() / "accel" / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")


def probe_kvm(sut: SystemUnderTest, image: GuestImage, logdir: Path) -> str | None:
    """Boot under KVM; return None if the guest answered SSH, else why not."""
    from .boot import booted  # local: boot imports machine, keep this module light

    try:
        with booted(sut, Topology("kvm-probe", ()), image, "kvm", logdir, {}, ssh_deadline_s=PROBE_DEADLINE_S):
            return None
    except TxnstormError as exc:
        # The probe's log dir is temporary: a crash backtrace there is gone.
        return re.sub(r" \(backtrace: [^)]*\)", "", str(exc))


def choose(
    requested: str,
    sut: SystemUnderTest,
    image: GuestImage,
    say: Callable[[str], None] = print,
) -> AccelChoice:
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
    cache = _cache_file(sut, image)
    try:
        cached = json.loads(cache.read_text())
        return AccelChoice(cached["accel"], cached["reason"] + " (cached)")
    except (OSError, ValueError, KeyError):
        pass
    with private_dir("kvm-probe") as logdir:
        failure = probe_kvm(sut, image, logdir)
    if failure is None:
        choice = AccelChoice("kvm", "KVM probe booted the guest to SSH")
    else:
        choice = AccelChoice("tcg", f"KVM probe failed: {failure}")
    say(f"accel auto: {choice.reason}; using {choice.accel.upper()}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"accel": choice.accel, "reason": choice.reason}) + "\n")
    return choice
