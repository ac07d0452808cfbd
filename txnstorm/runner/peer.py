"""The peer row of ``make teeth`` (issue #35): QEMU's own iotests of this area on the same build.

For a row of ``make teeth`` (a fault's build, or the stock build of that version) the tree's
``tests/qemu-iotests/check -qcow2`` runs the area's iotests (``IOTESTS``) and the fault's
own regression test (its README's ``Peer:`` line), with that build's binaries as ``QEMU_PROG``,
``QEMU_IMG_PROG``, ``QEMU_IO_PROG`` and ``QSD_PROG`` (the builds have no qemu-nbd: Debian's
``/usr/bin/qemu-nbd`` serves the tests that start one; no fault here patches it).  ``check`` runs
from a copy of the tree's ``tests/qemu-iotests`` and ``python/``: it writes its results beside
itself, and a write into the patched tree would change the tree's identity and so its build's
cache key.  A fault is **caught** by the peers when a test fails on its build that passed on the
stock build of the same version (a test failing on both is the stock's, said, not counted).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from txnstorm.errors import UserError
from txnstorm.host import process

# QEMU's iotests of this area (issues #35 and #36): make teeth's peer row, make coverage-iotests.
IOTESTS = (
    "055", "056", "124", "129", "141", "185", "202", "203", "208", "218", "219", "234", "256", "257", "281",
    "283", "copy-before-write", "image-fleecing", "export-incoming-iothread", "graph-changes-while-io",
    "iothreads-commit-active", "iothreads-create", "iothreads-nbd-export", "iothreads-resize",
    "iothreads-stream", "migrate-during-backup", "qsd-jobs", "stream-under-throttle",
)  # fmt: skip
QEMU_NBD = Path("/usr/bin/qemu-nbd")  # Debian's (make setup): the teeth builds make none
CHECK_TIMEOUT_S = 1800.0  # 29 tests took 90-400 s on 2 cores; a hung test is cut here


@dataclass(frozen=True)
class PeerResult:
    tests: tuple[str, ...]
    failed: tuple[str, ...] = ()
    not_run: tuple[str, ...] = ()
    seconds: float = 0.0
    trouble: str = ""  # check did not run, or was cut off (then nothing is judged)

    @property
    def passed(self) -> tuple[str, ...]:
        return tuple(t for t in self.tests if t not in self.failed and t not in self.not_run)


@dataclass(frozen=True)
class PeerVerdict:
    caught_by: tuple[str, ...]  # failed here, passed on the stock build
    stock_failed: tuple[str, ...] = ()  # failed here and on the stock build: not counted
    said: str = field(default="")

    @property
    def caught(self) -> bool:
        return bool(self.caught_by)


def peer_tests(readme_lines: Sequence[str]) -> tuple[str, ...]:
    """The fault's own regression tests: its README's ``Peer: name ...`` line (none: none)."""
    named = [line.split(":", 1)[1].split() for line in readme_lines if line.startswith("Peer:")]
    return tuple(name for names in named for name in names)


def tests_for(own: Sequence[str]) -> tuple[str, ...]:
    """The area's iotests, then the fault's own ones not among them."""
    return (*IOTESTS, *(t for t in own if t not in IOTESTS))


def parse_check(output: str, tests: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(failed, not run) from ``check``'s summary lines ``Failures: a b`` and ``Not run: c``; a test
    named nowhere whose own line says ``fail`` counts as failed too."""
    failed: list[str] = []
    not_run: list[str] = []
    for line in output.splitlines():
        if line.startswith("Failures:"):
            failed += line.split(":", 1)[1].split()
        elif line.startswith("Not run:"):
            not_run += line.split(":", 1)[1].split()
        elif (m := re.match(r"^(\S+)\s+(fail|not run)\b", line)) and m.group(1) in tests:
            (failed if m.group(2) == "fail" else not_run).append(m.group(1))
    order = {t: i for i, t in enumerate(tests)}
    return (tuple(sorted(set(failed), key=lambda t: order.get(t, len(order)))),
            tuple(sorted(set(not_run) - set(failed), key=lambda t: order.get(t, len(order)))))  # fmt: skip


def check_tree(tree: Path) -> Path:
    iotests = tree / "tests" / "qemu-iotests"
    if not (iotests / "check").is_file():
        raise UserError(f"{tree}: no tests/qemu-iotests/check; is it a QEMU source tree?")
    return iotests


def present(tree: Path, tests: Sequence[str]) -> tuple[str, ...]:
    """Those of ``tests`` that ``tree`` has (7.2 predates the ``iothreads-*`` tests)."""
    iotests = check_tree(tree)
    return tuple(t for t in tests if (iotests / t).is_file() or (iotests / "tests" / t).is_file())


def run(tree: Path, bin_dir: Path, tests: Sequence[str], log: Path) -> PeerResult:
    """``check -qcow2 tests`` of ``tree`` (those it has) with the binaries of ``bin_dir``; its
    output goes to ``log``."""
    iotests = check_tree(tree)
    tests = present(tree, tests)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="txnstorm-peer-") as tmp:
        root = Path(tmp)
        shutil.copytree(iotests, root / "tests" / "qemu-iotests", symlinks=True)
        shutil.copytree(tree / "python", root / "python", symlinks=True)
        env = {
            **os.environ,
            "QEMU_PROG": str(bin_dir / "qemu-system-x86_64"), "QEMU_IMG_PROG": str(bin_dir / "qemu-img"),
            "QEMU_IO_PROG": str(bin_dir / "qemu-io"), "QSD_PROG": str(bin_dir / "qemu-storage-daemon"),
            "QEMU_NBD_PROG": str(QEMU_NBD),
        }  # fmt: skip
        (root / "tmp").mkdir()  # check's socket dirs (/tmp/qemu-iotests-*) go with the copy
        env["TMPDIR"] = str(root / "tmp")
        cmd = ["nice", "-n", "10", "python3", "./check", "-qcow2", *tests]
        with open(log, "w") as out:
            # a session of its own: a check that hangs, or a Ctrl-C, ends with the QEMUs it started
            proc = subprocess.Popen(cmd, cwd=root / "tests" / "qemu-iotests", env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
            try:
                returncode = proc.wait(timeout=CHECK_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.end_group(proc)
                return PeerResult(tuple(tests), seconds=time.monotonic() - started,
                                  trouble=f"check was cut off after {CHECK_TIMEOUT_S:.0f} s (log {log})")  # fmt: skip
            except BaseException:
                process.end_group(proc)
                raise
    text = log.read_text(errors="replace")
    failed, not_run = parse_check(text, tests)
    trouble = "" if returncode in (0, 1) else f"check exited {returncode} (log {log})"
    return PeerResult(tuple(tests), failed, not_run, round(time.monotonic() - started, 1), trouble)


def judge(result: PeerResult, stock: PeerResult | None) -> PeerVerdict:
    """A fault's peers against its version's stock build: caught by the tests that fail here only."""
    if result.trouble:
        return PeerVerdict((), said=result.trouble)
    stock_failed = set(stock.failed) if stock is not None and not stock.trouble else set()
    caught = tuple(t for t in result.failed if t not in stock_failed)
    also = tuple(t for t in result.failed if t in stock_failed)
    ran = len(result.tests) - len(result.not_run)
    said = (f"caught by {' '.join(caught)}" if caught else "missed") + f" ({len(result.passed)} of {ran} pass"
    said += f"; {' '.join(also)} fail on stock too)" if also else ")"
    return PeerVerdict(caught, also, said)


def stock_said(result: PeerResult) -> str:
    if result.trouble:
        return result.trouble
    ran = len(result.tests) - len(result.not_run)
    fails = f"; {' '.join(result.failed)} fail" if result.failed else ""
    return f"{len(result.passed)} of {ran} pass{fails}"
