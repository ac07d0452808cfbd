"""Oracles: is what a transaction captured one point in time?

``compare_images`` wraps ``qemu-img compare``: exit 0 is identical, 1 is a
difference (the first differing offset is reported), anything else is an
error and raises, so a broken comparison can never read as a pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from txnstorm.errors import TxnstormError
from txnstorm.host.images import QemuImg

_MISMATCH_RE = re.compile(r"Content mismatch at offset (\d+)")


class CompareError(TxnstormError):
    """qemu-img compare could not compare (exit >= 2): never a verdict."""


@dataclass(frozen=True)
class Comparison:
    a: Path
    b: Path
    identical: bool
    first_difference: int | None
    output: str

    def describe(self) -> str:
        if self.identical:
            return f"{self.a.name} == {self.b.name}: identical"
        where = f"offset {self.first_difference}" if self.first_difference is not None else "unknown offset"
        return f"{self.a.name} != {self.b.name}: first difference at {where}"


def interpret_compare(a: Path, b: Path, returncode: int, stdout: str, stderr: str) -> Comparison:
    """Map qemu-img compare's exit status to a Comparison (or raise)."""
    output = (stdout + stderr).strip()
    if returncode == 0:
        return Comparison(a, b, True, None, output)
    if returncode == 1:
        match = _MISMATCH_RE.search(output)
        return Comparison(a, b, False, int(match.group(1)) if match else None, output)
    raise CompareError(f"qemu-img compare {a} {b} failed (exit {returncode}): {output[-400:]}")


def compare_images(
    qemu_img: QemuImg, a: Path, b: Path, formats: tuple[str, str] = ("qcow2", "qcow2"), force_share: bool = True
) -> Comparison:
    """Compare the guest-visible content of two images.

    ``force_share`` (-U) lets us read images that a running QEMU holds open
    read-only (frozen bases); never use it on an image QEMU still writes.
    """
    args = ["compare", "-f", formats[0], "-F", formats[1]]
    if force_share:
        args.append("-U")
    proc = qemu_img.run([*args, str(a), str(b)])
    return interpret_compare(a, b, proc.returncode, proc.stdout, proc.stderr)
