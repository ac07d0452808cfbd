"""The system under test: which qemu-system-x86_64 and qemu-img to use.

``QEMU`` may name a binary or a build dir (``~/qemu/build``, or an install
prefix with ``bin/``); ``QEMU_IMG`` likewise names qemu-img.  QEMU's own
functional-test names work too: ``QEMU_TEST_QEMU_BINARY`` and
``QEMU_TEST_QEMU_IMG`` (so a QEMU tree's CI can call txnstorm as it calls its
own tests).  Without them, Debian's packaged QEMU on PATH is used.  Everything is checked up front so a
wrong path is one clear line, not a test ERROR per scenario.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from txnstorm.errors import UserError
from txnstorm.settings import Settings

SYSTEM_BINARY = "qemu-system-x86_64"
IMG_BINARY = "qemu-img"
IO_BINARY = "qemu-io"
_VERSION_RE = re.compile(r"^QEMU emulator version (\S+)", re.MULTILINE)
_IMG_VERSION_RE = re.compile(r"^qemu-img version (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class SystemUnderTest:
    qemu: Path
    qemu_img: Path
    version: str
    qemu_io: Path | None = None
    data_dir: Path | None = None  # firmware dir for -L, for uninstalled builds

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", self.version)[:3])

    def describe(self) -> str:
        return f"QEMU {self.version} ({self.qemu}; qemu-img {self.qemu_img})"


def _search_dirs(directory: Path) -> list[Path]:
    return [directory, directory / "bin", directory / "build"]


def _find_in(directory: Path, name: str) -> Path | None:
    for d in _search_dirs(directory):
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _run_version(binary: Path, var: str) -> str:
    try:
        proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=20)
    except OSError as exc:
        raise UserError(f"{var}={binary} cannot be run ({exc.strerror}); point {var} at a QEMU binary") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{var}={binary} did not answer --version within 20 s; is it really QEMU?") from None
    return proc.stdout + proc.stderr


def _locate(var: str, value: str | None, default_name: str) -> Path:
    if not value:
        found = shutil.which(default_name)
        if not found:
            raise UserError(
                f"{default_name} not found on PATH; run 'make setup' (installs Debian's QEMU) "
                f"or set {var}=/path/to/{default_name} or a QEMU build dir"
            )
        return Path(found)
    path = Path(value).expanduser()
    if path.is_dir():
        found_in_dir = _find_in(path, default_name)
        if not found_in_dir:
            raise UserError(
                f"{var}={value} is a directory without {default_name} (looked in ., bin/, build/); "
                "build QEMU there or name the binary"
            )
        return found_in_dir.resolve()
    if not path.exists():
        raise UserError(f"{var}={value}: no such file; set {var} to a {default_name} binary or a QEMU build dir")
    if not os.access(path, os.X_OK):
        raise UserError(f"{var}={value} is not executable; set {var} to a {default_name} binary or a QEMU build dir")
    return path.resolve()


def _check_x86_64(qemu: Path) -> None:
    proc = subprocess.run([str(qemu), "-machine", "help"], capture_output=True, text=True, timeout=20)
    if "q35" not in proc.stdout and "i440FX" not in proc.stdout:
        raise UserError(f"QEMU={qemu} does not emulate x86_64 PCs (no q35/pc machine); use a qemu-system-x86_64 binary")


def _checked_system(value: str | None, var: str = "QEMU") -> tuple[Path, str]:
    """The qemu-system-x86_64 named by ``value`` (or on PATH) and its version."""
    system = _locate(var, value, SYSTEM_BINARY)
    out = _run_version(system, "QEMU")
    match = _VERSION_RE.search(out)
    if not match:
        first = out.strip().splitlines()[0] if out.strip() else "no output"
        raise UserError(f"QEMU={system} is not a QEMU system emulator (--version said: {first[:80]})")
    _check_x86_64(system)
    return system, match.group(1).rstrip(",")


def _checked_img(value: str | None, sibling_dir: Path | None, var: str = "QEMU_IMG") -> Path:
    if value:
        img = _locate(var, value, IMG_BINARY)
    else:
        img = (_find_in(sibling_dir, IMG_BINARY) if sibling_dir else None) or _locate("QEMU_IMG", None, IMG_BINARY)
    if not _IMG_VERSION_RE.search(_run_version(img, "QEMU_IMG")):
        raise UserError(f"QEMU_IMG={img} is not qemu-img; set QEMU_IMG to a qemu-img binary")
    return img


def check_named(settings: Settings) -> None:
    """Check only what the user named (``QEMU``, ``QEMU_IMG`` or their
    aliases): Debian's defaults may not be installed yet, set-up does that."""
    system = _checked_system(settings.qemu, settings.qemu_var)[0] if settings.qemu else None
    if settings.qemu_img:
        _checked_img(settings.qemu_img, None, settings.qemu_img_var)
    elif system and _find_in(system.parent, IMG_BINARY):
        _checked_img(None, system.parent)


def resolve(qemu: str | None = None, qemu_img: str | None = None, qemu_var: str = "QEMU",
            qemu_img_var: str = "QEMU_IMG") -> SystemUnderTest:  # fmt: skip
    """Find and check the QEMU under test (``qemu``: a binary or build dir, None: Debian's on
    PATH; ``qemu_img`` None: the one beside it, else Debian's); raise UserError with advice if
    wrong, naming the variable the user set (``qemu_var``, ``qemu_img_var``: an alias's name).  The
    user's choice is ``Settings.qemu``/``qemu_img`` (``resolve_settings``)."""
    system, version = _checked_system(qemu, qemu_var)
    sibling_dir = system.parent
    img = _checked_img(qemu_img, sibling_dir, qemu_img_var)
    qemu_io = _find_in(sibling_dir, IO_BINARY) or (Path(p) if (p := shutil.which(IO_BINARY)) else None)

    data_dir = None
    for candidate in (sibling_dir / "pc-bios", sibling_dir.parent / "share" / "qemu"):
        if candidate.is_dir() and system.parent != Path("/usr/bin"):
            data_dir = candidate
            break
    return SystemUnderTest(qemu=system, qemu_img=img, version=version, qemu_io=qemu_io, data_dir=data_dir)


def resolve_settings(settings: Settings) -> SystemUnderTest:
    """The QEMU under test the user's settings name (``QEMU``, ``QEMU_IMG`` or their aliases)."""
    return resolve(settings.qemu, settings.qemu_img, settings.qemu_var, settings.qemu_img_var)
