"""qemu-img as a library: create the images a scenario needs."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from txnstorm.errors import QemuDied, QemuHung, TxnstormError
from txnstorm.host.process import die_with_parent


class QemuImgError(TxnstormError):
    pass


# A new image takes well under a second; one not made in this long hangs (a drain that never ends
# inside qemu-img, as drain mutants do): a FAIL naming qemu-img, before Avocado's test timeout
# interrupts the test without a reason (make mutants measured block/io.c:75 INTERRUPTED at 300 s).
CREATE_TIMEOUT_S = 60.0


class QemuImg:
    def __init__(self, binary: Path) -> None:
        self.binary = Path(binary)

    def run(self, args: Sequence[str], timeout: float = 300.0) -> subprocess.CompletedProcess:
        """``qemu-img args``, which dies with this process (a test Avocado's timeout ends leaves no
        qemu-img behind).  qemu-img is the QEMU under test's too: killed by a signal it is a
        ``QemuDied``, not ending in ``timeout`` seconds a ``QemuHung`` (it is killed first); either is
        a FAIL of that QEMU, never the suite's ERROR."""
        command = [str(self.binary), *args]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  preexec_fn=functools.partial(die_with_parent, os.getpid()))  # noqa: PLW1509 - PDEATHSIG
        except subprocess.TimeoutExpired as hung:
            raise QemuHung(f"qemu-img {args[0]} did not end in {timeout:g} s (killed): {_short(command)}") from hung
        if proc.returncode < 0:
            raise QemuDied(f"qemu-img {args[0]} killed by {signal.Signals(-proc.returncode).name}: "
                           f"{proc.stderr.strip()[-300:] or _short(command)}")  # fmt: skip
        return proc

    def create(self, path: Path, size: str, fmt: str = "qcow2") -> Path:
        proc = self.run(["create", "-q", "-f", fmt, str(path), size], timeout=CREATE_TIMEOUT_S)
        if proc.returncode != 0:
            raise QemuImgError(f"qemu-img create {path} failed: {proc.stderr.strip()}")
        return path

    def create_overlay(self, path: Path, backing: Path, backing_fmt: str, size: int | None = None) -> Path:
        """A qcow2 overlay naming ``backing`` (for blockdev-snapshot targets); with ``size`` (the
        backing's virtual size) ``backing`` is not opened (``-u``): it may not exist yet."""
        sized = ["-u", str(path), str(size)] if size is not None else [str(path)]
        proc = self.run(["create", "-q", "-f", "qcow2", "-F", backing_fmt, "-b", str(backing), *sized],
                        timeout=CREATE_TIMEOUT_S)
        if proc.returncode != 0:
            raise QemuImgError(f"qemu-img create overlay {path} failed: {proc.stderr.strip()}")
        return path

    def info(self, path: Path, fmt: str | None = None) -> dict:
        """``qemu-img info`` as JSON; -U because QEMU may hold the image."""
        args = ["info", "-U", "--output=json"] + (["-f", fmt] if fmt else []) + [str(path)]
        proc = self.run(args)
        if proc.returncode != 0:
            raise QemuImgError(f"qemu-img info {path} failed: {proc.stderr.strip()}")
        return json.loads(proc.stdout)

    def virtual_size(self, path: Path, fmt: str | None = None) -> int:
        return int(self.info(path, fmt)["virtual-size"])

    def read_block(self, path: Path, fmt: str, offset: int, size: int, scratch: Path) -> bytes:
        """The guest-visible ``size`` bytes at ``offset`` (a multiple of ``size``) of ``path``'s chain
        (``qemu-img dd`` from there to the end; QEMU must have let go of the image).  No ``count``:
        qemu-img dd (7.2 to 10.2) applies it before ``skip``, says "cannot skip to specified offset"
        and exits 0 with nothing written, so what it wrote is checked too."""
        out = scratch / f"{path.name}.{offset}.raw"
        proc = self.run(["dd", "-f", fmt, "-O", "raw", f"bs={size}", f"skip={offset // size}", f"if={path}",
                         f"of={out}"])  # fmt: skip
        try:
            block = out.read_bytes()[:size] if out.exists() else b""
        finally:
            out.unlink(missing_ok=True)
        if proc.returncode != 0 or len(block) != size:
            raise QemuImgError(f"qemu-img dd of {path} at {offset} gave {len(block)} of {size} bytes "
                               f"(exit {proc.returncode}): {proc.stderr.strip()}")  # fmt: skip
        return block

    def extract_snapshot(self, path: Path, fmt: str, snapshot: str, out: Path) -> Path:
        """Copy internal snapshot ``snapshot`` of ``path`` into a standalone qcow2."""
        proc = self.run(["convert", "-f", fmt, "-l", f"snapshot.name={snapshot}", "-O", "qcow2", str(path), str(out)])
        if proc.returncode != 0:
            raise QemuImgError(f"qemu-img convert -l snapshot.name={snapshot} {path} failed: {proc.stderr.strip()}")
        return out


def nbd_uri(socket: Path, name: str) -> str:
    """The NBD URI of export ``name`` on a unix socket (qemu-img and libnbd read it)."""
    return f"nbd+unix:///{urllib.parse.quote(name, safe='')}?socket={socket}"


def _short(command: Sequence[str]) -> str:
    """A command line with its paths cut to their last part (a reason line stays readable)."""
    return " ".join(Path(word).name if word.startswith("/") else word for word in command)
