import shutil
import subprocess
from pathlib import Path

import pytest

from txnstorm.oracles.stamps import judge, newest_generation, read_region
from txnstorm.workload.stamp_format import BLOCK, StampRegion, decode, encode

WRITER = Path(__file__).resolve().parents[2] / "guests" / "tiny" / "src" / "stampwriter.c"


def region(*stamps: tuple[int, int], slots: int = 8) -> bytes:
    data = bytearray(slots * BLOCK)
    for disk, gen in stamps:
        slot = gen % slots
        data[slot * BLOCK : (slot + 1) * BLOCK] = encode(disk, gen, slots)
    return bytes(data)


def test_roundtrip_and_damage():
    block = encode(1, 42, 8)
    assert len(block) == BLOCK and decode(block) == (1, 42)
    damaged = bytearray(block)
    damaged[20] ^= 1
    assert decode(bytes(damaged)) is None
    assert decode(b"\0" * BLOCK) is None


def test_newest_generation_wraps_around_the_ring():
    data = region(*[(0, g) for g in range(1, 20)])
    assert newest_generation(data, 0) == (19, (19 % 8) * BLOCK)
    assert newest_generation(data, 1) == (0, None)


@pytest.mark.parametrize(("a", "b", "ok"), [(5, 5, True), (6, 5, True), (0, 0, True), (7, 5, False), (5, 6, False)])
def test_one_point_in_time_rule(a, b, ok):
    ra = region(*[(0, g) for g in range(1, a + 1)])
    rb = region(*[(1, g) for g in range(1, b + 1)])
    verdict = judge(ra, rb)
    assert (verdict.a, verdict.b, verdict.consistent) == (a, b, ok)
    assert ("NOT" not in verdict.describe()) == ok


def test_c_writer_matches_the_python_format(tmp_path, qemu_img):
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    writer = tmp_path / "stampwriter"
    subprocess.run(["gcc", "-O2", "-o", str(writer), str(WRITER)], check=True)
    size = 4 << 20
    disks = [tmp_path / "a.raw", tmp_path / "b.raw"]
    for d in disks:
        with open(d, "wb") as f:
            f.truncate(size)
    where = StampRegion.at_end(size, slots=16)
    out = subprocess.run(
        [str(writer), *map(str, disks), str(where.offset), "16", "0.05"], capture_output=True, text=True, check=True
    ).stdout
    generations = int(out.split()[1])
    verdict = judge(*(read_region(qemu_img.binary, d, "raw", where) for d in disks))
    assert verdict.a == verdict.b == generations > 0


def test_the_region_is_read_through_the_backing_chain_from_any_path(tmp_path, qemu_img):
    """Only the region is converted; what the guest sees: the top's write over its backing's, in a
    directory whose name has a comma (QEMU's option syntax escapes it)."""
    where, size = StampRegion.at_end(4 << 20, slots=4), 4 << 20
    folder = tmp_path / "a,b"
    folder.mkdir()
    base, top = folder / "base.qcow2", folder / "top.qcow2"
    qemu_img.create(base, str(size))
    qemu_img.create_overlay(top, base, "qcow2")
    io = shutil.which("qemu-io")
    if not io:
        pytest.skip("qemu-io not installed")
    subprocess.run([io, "-c", f"write -P 0xab {where.offset} 16k", str(base)], check=True, capture_output=True)
    subprocess.run([io, "-c", f"write -P 0xcd {where.offset + 4096} 4k", str(top)], check=True, capture_output=True)
    region = read_region(qemu_img.binary, top, "qcow2", where)
    assert len(region) == where.size == 16384
    assert region[:4096] == b"\xab" * 4096 and region[4096:8192] == b"\xcd" * 4096
    assert region[8192:] == b"\xab" * 8192
