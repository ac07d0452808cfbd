"""The stamp writers' on-disk format: what the guest's ``stampwriter.c`` and
``nbd_stamps`` write and ``oracles.stamps`` reads back.

Stamp format (little-endian, one 4096-byte block; the C writer matches):

    0  char[8] magic "TXNSTAMP"    16  u64 generation
    8  u32     version (1)         24  u64 slot (block index in the region)
   12  u32     disk id             32  u32 crc32 of bytes 0..31, rest zero

Generation n lives in slot ``n % slots`` of the stamp region, so the newest
generation is always present however long the writer ran.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

BLOCK = 4096
MAGIC = b"TXNSTAMP"
VERSION = 1
_HEAD = struct.Struct("<8sIIQQ")  # 32 bytes, followed by the crc32
DEFAULT_SLOTS = 64  # 256 KiB at the end of each disk

def encode(disk_id: int, generation: int, slots: int) -> bytes:
    head = _HEAD.pack(MAGIC, VERSION, disk_id, generation, generation % slots)
    return (head + struct.pack("<I", zlib.crc32(head))).ljust(BLOCK, b"\0")


def decode(block: bytes) -> tuple[int, int] | None:
    """(disk_id, generation) of a valid stamp block, else None."""
    if len(block) < 36 or block[:8] != MAGIC:
        return None
    head = block[:32]
    (crc,) = struct.unpack_from("<I", block, 32)
    if zlib.crc32(head) != crc:
        return None
    _, version, disk_id, generation, _slot = _HEAD.unpack(head)
    return (disk_id, generation) if version == VERSION else None



@dataclass(frozen=True)
class StampRegion:
    offset: int  # bytes from the start of the disk
    slots: int = DEFAULT_SLOTS

    @classmethod
    def at_end(cls, disk_bytes: int, slots: int = DEFAULT_SLOTS) -> StampRegion:
        return cls(disk_bytes - slots * BLOCK, slots)

    @property
    def size(self) -> int:
        return self.slots * BLOCK
