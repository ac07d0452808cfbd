"""Unit tests never see the caller's choices, nor another run's temp files."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import GUEST_CACHE

from txnstorm.settings import default_cache_dir

REPO = Path(__file__).resolve().parents[2]


def test_the_callers_choices_are_not_seen():
    for name in os.environ:
        assert name not in ("QEMU", "QEMU_IMG", "ACCEL", "XDG_CACHE_HOME", "QEMU_PROG", "RUNS"), name
        assert not name.startswith("QEMU_TEST_"), name
        assert not name.startswith("TXNSTORM_") or name == "TXNSTORM_CACHE", name


def test_the_machines_state_is_not_seen():
    """An empty home and an empty cache of the run's own: no `make qemu` build, guest or
    ~/avocado of the developer's (what a fresh machine has); the guest tests name theirs."""
    mine = Path(tempfile.gettempdir())
    home, cache = Path(os.environ["HOME"]), Path(os.environ["TXNSTORM_CACHE"])
    assert home == Path.home() and home.parent == mine and cache.parent == mine
    assert default_cache_dir(os.environ) == cache
    assert not any(cache.glob("qemu/*")) and not any(cache.glob("guests/*"))
    assert "pytest-txnstorm-" not in str(GUEST_CACHE), "the caller's cache, never a run's own (xdist workers too)"


@pytest.mark.long(2)
def test_a_made_qemu_in_the_callers_cache_is_not_seen(tmp_path):
    """validate's BASE=10.2.2 is "not built" here whatever `make qemu` built for the developer."""
    proc = subprocess.run([sys.executable, "-m", "txnstorm.runner.cli", "validate",
                           "--series=teeth/transaction-without-drain/10.patch",
                           "--base=10.2.2"], cwd=REPO, capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 2 and "BASE=10.2.2 is not built (built: none)" in proc.stderr, proc.stderr


def test_each_run_has_a_temp_dir_of_its_own():
    mine = Path(tempfile.gettempdir())
    assert mine.name.startswith("pytest-txnstorm-") and mine.is_dir()
    assert os.environ["TMPDIR"] == str(mine)


@pytest.mark.long(3)
def test_a_callers_wrong_qemu_does_not_leak_into_the_tests():
    """`make unit QEMU=/nonexistent` (the Makefile exports QEMU): the tests
    that resolve QEMU themselves still pass."""
    # (a cache under /proc: the guest tests take the caller's cache, and even root cannot create this one)
    bad = {"QEMU": "/nonexistent", "QEMU_IMG": "/nonexistent", "ACCEL": "hvf", "TXNSTORM_CACHE": "/proc/nonexistent/c",
           "QEMU_PROG": "/nonexistent", "QEMU_IMG_PROG": "/nonexistent",
           "QEMU_TEST_QEMU_BINARY": "/nonexistent", "TXNSTORM_SEED": "abc"}  # fmt: skip
    # test_bad_input's cases that take the default QEMU, qemu-img or cache dir (each one a CLI run)
    takes_defaults = "not test_bad_input or missing or accelerator or corrupt"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests/unit/test_sut.py",
         "tests/unit/test_bad_input.py", "tests/unit/test_accel.py", "-k", takes_defaults],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, **bad}, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
