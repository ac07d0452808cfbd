"""Every setting a user gives txnstorm through the environment, read in one place.

Entry points (the CLI, the input check, a scenario test's set-up, the bench and reliability
harnesses) read them once with ``Settings.from_env()`` (a scenario test lets Avocado's ``-p``
parameters win) and hand the values down; no module below the scenario layer reads
``os.environ`` (``tests/unit/test_layers.py``).  Standard library only: the input check imports it
before the virtualenv exists.

=========================  ==================================================================
``QEMU``                   qemu-system-x86_64 or a build dir (QEMU's own name:
                           ``QEMU_TEST_QEMU_BINARY``; both set and different is an error)
``QEMU_IMG``               qemu-img (``QEMU_TEST_QEMU_IMG``)
``ACCEL``                  auto, kvm or tcg
``TXNSTORM_SEED``          every test's seed (``SEED`` in make)
``TXNSTORM_CACHE``         the cache root (else ``$XDG_CACHE_HOME/txnstorm``, else ``~/.cache/txnstorm``)
``TXNSTORM_QEMU_TRACE``    QEMU trace event patterns, comma-separated, into ``qemu-trace.log``
``TXNSTORM_KEEP_CORES``    1: keep a crashed QEMU's core in the log dir beside its backtrace
``TXNSTORM_QMP_ANSWER_S``  seconds a QMP command may take before QEMU is called hung (default 60)
``TXNSTORM_BOOT``          restore (default): load a saved guest of the same shape instead of booting
                           it (``<cache>/boot-states``); cold: boot every guest
=========================  ==================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from txnstorm.errors import UserError

QMP_ANSWER_S = 60.0  # a QEMU that answers no QMP command within this is hung (a FAIL of that QEMU)
ACCEL_CHOICES = ("auto", "kvm", "tcg")  # ACCEL=: auto probes KVM with a real boot, then falls back to TCG
ALIASES = {"QEMU": "QEMU_TEST_QEMU_BINARY", "QEMU_IMG": "QEMU_TEST_QEMU_IMG"}  # QEMU's functional tests' names


def named(env: Mapping[str, str], var: str) -> tuple[str, str | None]:
    """(the variable the user set, its value): ``var`` or its alias; empty counts as unset; two
    different values are an error."""
    ours, theirs = env.get(var) or None, env.get(ALIASES[var]) or None
    if ours and theirs and ours != theirs:
        raise UserError(f"{var}={ours} and {ALIASES[var]}={theirs} disagree; set one of them")
    return (ALIASES[var], theirs) if theirs and not ours else (var, ours)


def default_cache_dir(env: Mapping[str, str]) -> Path:
    if env.get("TXNSTORM_CACHE"):
        return Path(env["TXNSTORM_CACHE"]).expanduser()
    return Path(env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "txnstorm"


@dataclass(frozen=True)
class Settings:
    """The user's settings (the table in this module's docstring)."""

    qemu: str | None = None
    qemu_var: str = "QEMU"  # the variable that named it (QEMU or QEMU_TEST_QEMU_BINARY), for messages
    qemu_img: str | None = None
    qemu_img_var: str = "QEMU_IMG"
    accel: str = "auto"
    seed: str | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir({}))
    qemu_trace: tuple[str, ...] = ()
    keep_cores: bool = False
    qmp_answer_s: float = QMP_ANSWER_S
    restore_guests: bool = True  # TXNSTORM_BOOT=restore (default) or cold

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        (qemu_var, qemu), (img_var, qemu_img) = named(env, "QEMU"), named(env, "QEMU_IMG")
        return cls(
            qemu=qemu, qemu_var=qemu_var, qemu_img=qemu_img, qemu_img_var=img_var,
            accel=env.get("ACCEL") or "auto", seed=env.get("TXNSTORM_SEED") or None,
            cache_dir=default_cache_dir(env),
            qemu_trace=tuple(p.strip() for p in env.get("TXNSTORM_QEMU_TRACE", "").split(",") if p.strip()),
            keep_cores=env.get("TXNSTORM_KEEP_CORES") == "1",
            qmp_answer_s=qmp_answer_seconds(env.get("TXNSTORM_QMP_ANSWER_S", "")),
            restore_guests=boot_choice(env.get("TXNSTORM_BOOT", "")) == "restore",
        )  # fmt: skip


def qmp_answer_seconds(value: str) -> float:
    """``TXNSTORM_QMP_ANSWER_S``: empty is the default; else a number of seconds from 5 up."""
    if not value.strip():
        return QMP_ANSWER_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 5 <= seconds <= 3600:
        raise UserError(f"TXNSTORM_QMP_ANSWER_S={value} is not a number of seconds from 5 to 3600 "
                        f"(default {QMP_ANSWER_S:.0f}; e.g. TXNSTORM_QMP_ANSWER_S=120 on a very slow host)")
    return seconds


BOOT_CHOICES = ("restore", "cold")


def boot_choice(value: str) -> str:
    """``TXNSTORM_BOOT``: restore (the default) or cold."""
    choice = value.strip().lower() or "restore"
    if choice not in BOOT_CHOICES:
        raise UserError(f"TXNSTORM_BOOT={value} is not one of {', '.join(BOOT_CHOICES)} "
                        "(restore: load a saved guest where one fits, the default; cold: boot every guest)")
    return choice


def cache_dir() -> Path:
    """The cache root the environment names now (for the entry points and the runner layer)."""
    return Settings.from_env().cache_dir
