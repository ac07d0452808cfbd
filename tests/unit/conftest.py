"""Unit tests are hermetic: whatever the caller's shell or make exports
(``QEMU``, ``QEMU_IMG``, ``ACCEL``, ``TXNSTORM_*``, QEMU's own
``QEMU_TEST_*``, and make's ``MAKEFLAGS``, which carry a ``make unit QEMU=...``
into every child make) is not seen here, and each run has a temp dir of its own,
so two runs on one host never count or sweep each other's files.

Nor is the machine's state: every test runs with an empty home of the run's own (``HOME``, so no
``~/avocado``, ``~/.cache`` or ``~/.config`` of the developer's is read or written) and an empty
``TXNSTORM_CACHE`` (no QEMU built by ``make qemu``, no guest, no kept KVM verdict): what a fresh
machine has.  The one exception is explicit: the tests that boot the real guest take the
``guest_cache`` fixture (or ``GUEST_CACHE``), the cache the caller's run uses (its
``TXNSTORM_CACHE``, else ``~/.cache/txnstorm``), where the guest is built once if it is missing,
so a ``make check`` on a fresh machine builds it once for the unit stage and the quick tier."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from txnstorm.host.images import QemuImg
from txnstorm.settings import BY_NAME, default_cache_dir

CALLER_VARS = (*BY_NAME,  # every setting and alias txnstorm/settings.py declares
               # `make unit QEMU=/x` hands QEMU=/x to every child make through these
               "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "ISSUE")
CALLER_PREFIXES = ("TXNSTORM_", "QEMU_TEST_")


def _forget_the_callers_choices() -> None:
    for name in list(os.environ):
        if name in CALLER_VARS or name.startswith(CALLER_PREFIXES):
            del os.environ[name]


# The caller's cache: read before their choices are forgotten, by the run's first process (pytest-xdist's
# workers inherit its environment, where TXNSTORM_CACHE is already the empty one: they read this).
GUEST_CACHE = Path(os.environ.setdefault("PYTEST_TXNSTORM_GUEST_CACHE", str(default_cache_dir(os.environ))))
_forget_the_callers_choices()
RUN_TMP = Path(tempfile.mkdtemp(prefix="pytest-txnstorm-"))
os.environ["TMPDIR"] = str(RUN_TMP)  # children (CLI runs, QEMU) inherit it
tempfile.tempdir = str(RUN_TMP)
EMPTY_HOME, EMPTY_CACHE = RUN_TMP / "home", RUN_TMP / "cache"
EMPTY_HOME.mkdir()
EMPTY_CACHE.mkdir()
os.environ.pop("XDG_CACHE_HOME", None)
os.environ["HOME"] = str(EMPTY_HOME)
os.environ["TXNSTORM_CACHE"] = str(EMPTY_CACHE)


@pytest.fixture
def guest_cache() -> Path:
    """The cache of the caller's run, for a test that boots the real guest (it builds the guest
    there if it is missing: ``assets.ensure_guest`` under the cache's lock, ~20 s once)."""
    return GUEST_CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(RUN_TMP, ignore_errors=True)


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Each test's call report on its node (``item.rep_call``), for fixtures
    that keep evidence only when the test did not pass."""
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each worker of scripts/run-unit starts on the long tests (``@pytest.mark.long(seconds)``:
    what it took alone on the 2-core TCG host), the longest spread first, so none queues behind
    another at the stage's end.  pytest-xdist's ``worksteal`` hands worker ``i`` of ``n`` the
    ``i``-th contiguous slice of this order and steals from a slice's tail: the long tests go to
    the slices' heads, in turn.  Without workers, the order is left alone."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))  # set in each worker
    if workers < 2:
        return

    def seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long")
        return float(marker.args[0]) if marker else 0.0

    long = sorted((i for i in items if seconds(i)), key=seconds, reverse=True)
    rest = [i for i in items if not seconds(i)]
    heads: list[list[pytest.Item]] = [long[w::workers] for w in range(workers)]
    ordered: list[pytest.Item] = []
    for w in range(workers):
        left = len(items) - len(ordered)
        take = max(0, left // (workers - w) - len(heads[w]))  # worksteal's slice, less its head
        ordered += heads[w] + rest[:take]
        rest = rest[take:]
    items[:] = ordered + rest
