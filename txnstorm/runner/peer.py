"""QEMU's own iotests of this area: their list, ``check`` run safely, and the peer row of ``make
teeth`` (issue #35), those iotests on the same build.

``run_check`` is the one way this project runs a tree's ``check`` (the peer row here, ``make
coverage-iotests``, ``make mutants MUTANTS_PEER=iotests``): in a session of its own with a TMPDIR
of its own, so a check that hangs or is interrupted ends with the QEMUs it started, and its socket
dirs (``$TMPDIR/qemu-iotests-*``) go with it.

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
from collections.abc import Mapping, Sequence
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
class CheckRun:
    returncode: int | None  # None: cut off at the timeout (its process group ended)
    output: str
    seconds: float


def run_check(
    check: Path, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None,
    nice: int = 19,
) -> CheckRun:  # fmt: skip
    """``check args`` from its own directory (under ``nice``), in a session and a TMPDIR of its own:
    cut off after ``timeout`` seconds, or interrupted, it is ended with the QEMUs it started."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="txnstorm-iotests-") as tmp:
        proc = subprocess.Popen(["nice", "-n", str(nice), str(check), *args], cwd=check.parent,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, env={**(env or os.environ), "TMPDIR": tmp})  # fmt: skip
        try:
            output, _ = proc.communicate(timeout=timeout)
            returncode: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            process.end_group(proc)
            output, _ = proc.communicate()
            returncode = None
        except BaseException:
            process.end_group(proc)
            raise
    return CheckRun(returncode, output, round(time.monotonic() - started, 1))


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
    tests = present(tree, tests)  # a tree without check is bad input, said here
    iotests = tree / "tests" / "qemu-iotests"
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
        ran = run_check(root / "tests" / "qemu-iotests" / "check", ["-qcow2", *tests], env=env,
                        timeout=CHECK_TIMEOUT_S, nice=10)  # fmt: skip
    log.write_text(ran.output)
    if ran.returncode is None:
        cut_off = f"check was cut off after {CHECK_TIMEOUT_S:.0f} s (log {log})"
        return PeerResult(tests, seconds=ran.seconds, trouble=cut_off)
    failed, not_run = parse_check(ran.output, tests)
    trouble = "" if ran.returncode in (0, 1) else f"check exited {ran.returncode} (log {log})"
    return PeerResult(tests, failed, not_run, ran.seconds, trouble)


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
