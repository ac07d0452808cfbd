"""Unit tests never see the caller's choices, nor another run's temp files."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_callers_choices_are_not_seen():
    for name in os.environ:
        assert name not in ("QEMU", "QEMU_IMG", "ACCEL"), name
        assert not name.startswith(("TXNSTORM_", "QEMU_TEST_")), name


def test_each_run_has_a_temp_dir_of_its_own():
    mine = Path(tempfile.gettempdir())
    assert mine.name.startswith("pytest-txnstorm-") and mine.is_dir()
    assert os.environ["TMPDIR"] == str(mine)


@pytest.mark.long(3)
def test_a_callers_wrong_qemu_does_not_leak_into_the_tests():
    """`make unit QEMU=/nonexistent` (the Makefile exports QEMU): the tests
    that resolve QEMU themselves still pass."""
    bad = {"QEMU": "/nonexistent", "QEMU_IMG": "/nonexistent", "ACCEL": "hvf", "TXNSTORM_CACHE": "/nonexistent/c",
           "QEMU_TEST_QEMU_BINARY": "/nonexistent", "TXNSTORM_SEED": "abc"}  # fmt: skip
    # test_bad_input's cases that take the default QEMU, qemu-img or cache dir (each one a CLI run)
    takes_defaults = "not test_bad_input or missing or accelerator or corrupt"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests/unit/test_sut.py",
         "tests/unit/test_bad_input.py", "tests/unit/test_accel.py", "-k", takes_defaults],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, **bad}, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
