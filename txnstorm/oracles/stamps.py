"""Cross-disk point-in-time oracle: dependent generation stamps on two disks.

A writer stamps A(1), B(1), A(2), B(2), ... each write completed before the
next (``guests/tiny/src/stampwriter.c`` in the guest; ``nbd_stamps`` on the
host).  A capture of both disks taken at one instant sees newest generations
``a`` on A and ``b`` on B with ``a == b`` or ``a == b + 1``; anything else
means the two captures are from different instants.

The stamp format is ``workload/stamp_format.py``'s (the writers own it).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from txnstorm.errors import TxnstormError
from txnstorm.host.scratch import private_dir
from txnstorm.vm.cmdline import opt_value
from txnstorm.workload.stamp_format import BLOCK, StampRegion, decode

# Captures of A and B at two instants differ (a != b and a != b + 1) only if the writer completed
# at least this many stamp writes between them (B(a), A(a+1), B(a+1) from A(a); at least the
# last two).  A control round whose writer completed fewer from its first command to its last
# could not have been caught: not judged, not a miss.
WRITES_TO_DIFFER = 2


class StampError(TxnstormError):
    pass


def newest_generation(region: bytes, disk_id: int) -> tuple[int, int | None]:
    """(newest generation, its offset in the region); 0 when no stamp."""
    best, where = 0, None
    for off in range(0, len(region) - BLOCK + 1, BLOCK):
        stamp = decode(region[off : off + BLOCK])
        if stamp and stamp[0] == disk_id and stamp[1] > best:
            best, where = stamp[1], off
    return best, where


@dataclass(frozen=True)
class CrossDiskVerdict:
    a: int
    b: int
    offset_a: int | None
    offset_b: int | None

    @property
    def consistent(self) -> bool:
        return self.a in (self.b, self.b + 1)

    def describe(self) -> str:
        state = "one point in time" if self.consistent else "NOT one point in time"
        return (
            f"newest generation on A = {self.a} (region offset {self.offset_a}), "
            f"on B = {self.b} (region offset {self.offset_b}): {state} (valid: a == b or a == b + 1)"
        )


def judge(region_a: bytes, region_b: bytes) -> CrossDiskVerdict:
    a, off_a = newest_generation(region_a, 0)
    b, off_b = newest_generation(region_b, 1)
    return CrossDiskVerdict(a, b, off_a, off_b)


def read_region(qemu_img: Path, image: Path, fmt: str, region: StampRegion) -> bytes:
    """The stamp region of an image as the guest sees it (backing chain included).

    ``qemu-img dd skip=`` refuses offsets on 7.2, so only the region is converted to raw: a
    ``raw`` node with ``offset``/``size`` over the image (a whole 64 MiB image per read before).
    """
    opts = (f"driver=raw,offset={region.offset},size={region.size},file.driver={fmt},"
            f"file.file.driver=file,file.file.filename={opt_value(image)}")  # fmt: skip
    with private_dir("stamps") as tmp:
        raw = tmp / "region.raw"
        proc = subprocess.run(
            [str(qemu_img), "convert", "--image-opts", opts, "-O", "raw", str(raw)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise StampError(f"qemu-img convert of {image}'s stamp region failed: {proc.stderr.strip()}")
        return raw.read_bytes()
