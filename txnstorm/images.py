"""qemu-img as a library: create the images a scenario needs."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import TxnstormError


class QemuImgError(TxnstormError):
    pass


class QemuImg:
    def __init__(self, binary: Path) -> None:
        self.binary = Path(binary)

    def run(self, args: Sequence[str], timeout: float = 300.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def create(self, path: Path, size: str, fmt: str = "qcow2") -> Path:
        proc = self.run(["create", "-q", "-f", fmt, str(path), size])
        if proc.returncode != 0:
            raise QemuImgError(f"qemu-img create {path} failed: {proc.stderr.strip()}")
        return path
