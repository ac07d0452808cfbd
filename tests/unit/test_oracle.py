import subprocess
from pathlib import Path

import pytest

from txnstorm.oracles.compare import CompareError, compare_images, interpret_compare

A, B = Path("a.qcow2"), Path("b.qcow2")


def test_exit_0_is_identical():
    assert interpret_compare(A, B, 0, "Images are identical.\n", "").identical


def test_exit_1_is_a_difference_with_its_offset():
    result = interpret_compare(A, B, 1, "Content mismatch at offset 65536!\n", "")
    assert not result.identical
    assert result.first_difference == 65536
    assert "65536" in result.describe()


@pytest.mark.parametrize("rc", [2, 3, 4, -6])
def test_anything_else_is_an_error_never_a_pass(rc):
    with pytest.raises(CompareError):
        interpret_compare(A, B, rc, "", "qemu-img: Could not open")


def write(path: Path, offset: int) -> None:
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a {offset} 4k", str(path)], check=True, capture_output=True
    )


def test_real_qemu_img_identical_and_different(qemu_img, tmp_path):
    a = qemu_img.create(tmp_path / "a.qcow2", "1M")
    b = qemu_img.create(tmp_path / "b.qcow2", "1M")
    assert compare_images(qemu_img, a, b).identical
    write(b, 196608)
    result = compare_images(qemu_img, a, b)
    assert not result.identical
    assert result.first_difference == 196608


def test_real_qemu_img_missing_image_raises(qemu_img, tmp_path):
    a = qemu_img.create(tmp_path / "a.qcow2", "1M")
    with pytest.raises(CompareError, match="exit 2"):
        compare_images(qemu_img, a, tmp_path / "missing.qcow2")
