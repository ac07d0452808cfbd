import shutil
from pathlib import Path

import pytest

from txnstorm.images import QemuImg


@pytest.fixture
def qemu_img() -> QemuImg:
    binary = shutil.which("qemu-img")
    if not binary:
        pytest.skip("qemu-img not installed (run make setup)")
    return QemuImg(Path(binary))


FAKE_QEMU = """#!/bin/bash
case "$1" in
  --version) echo "QEMU emulator version 9.9.9 (fake)"; exit 0;;
  -machine) echo "pc-i440fx-9.9  Standard PC (i440FX + PIIX, 1996)"; echo "q35  Standard PC (Q35)"; exit 0;;
esac
echo "qemu-system-x86_64: ../block/io.c:123: bdrv_fake: Assertion \\`x == 0' failed." >&2
kill -ABRT $$
"""


def fake_qemu(directory: Path, script: str = FAKE_QEMU) -> Path:
    path = directory / "qemu-system-x86_64"
    path.write_text(script)
    path.chmod(0o755)
    return path


@pytest.fixture(name="fake_qemu")
def fake_qemu_fixture():
    """Write a fake qemu-system-x86_64 (or the given script) into a dir."""
    return fake_qemu
