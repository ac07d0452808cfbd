import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from txnstorm.errors import QemuDied, QemuFailure, QemuRefusedCommandLine
from txnstorm.host.sut import SystemUnderTest
from txnstorm.vm.cmdline import BootFiles
from txnstorm.vm.machine import Machine, Platform, crash_summary
from txnstorm.vm.process import describe_exit
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD


def test_crash_summary_prefers_the_assertion():
    text = "warning: x\nqemu: nbd/server.c:1: f: Assertion `a' failed.\nAborted\n"
    assert crash_summary(text).endswith("Assertion `a' failed.")
    assert crash_summary("one\nlast line\n") == "last line"
    assert crash_summary("") == "(no stderr)"


def test_describe_exit():
    assert describe_exit(-6) == "killed by SIGABRT"
    assert describe_exit(1) == "exited with status 1"


def test_qemu_abort_at_start_is_reported_with_signal_and_assertion(tmp_path, fake_qemu):
    qemu = fake_qemu(tmp_path)
    sut = SystemUnderTest(qemu=qemu, qemu_img=qemu, version="9.9.9")
    images = {d.name: tmp_path / f"{d.name}.qcow2" for d in TWO_DISKS_ONE_IOTHREAD.disks}
    platform = Platform(sut, BootFiles(tmp_path / "k", tmp_path / "i", ""), "tcg")
    vm = Machine(platform, TWO_DISKS_ONE_IOTHREAD, tmp_path / "log", images)
    start = time.monotonic()
    with pytest.raises(QemuDied, match=r"killed by SIGABRT: .*Assertion `x == 0' failed"):
        vm.launch(start_timeout=10)
    assert time.monotonic() - start < 9, "a crash must not be reported as a timeout"
    # launch cleaned up after itself: QEMU reaped, run dir (QMP socket) gone, no shutdown needed
    assert vm.rundir is None and vm.returncode == -6 and vm.qmp is None
    assert not list(Path(tempfile.gettempdir()).glob("txnstorm-vm-*"))
    assert (tmp_path / "log" / "qemu-cmdline.txt").read_text().startswith(str(qemu))
    assert vm.died_at_shutdown() is not None, "an abort is a crash, not our kill"


def test_qemu_refusing_the_command_line_is_the_suites_error_not_a_crash(tmp_path, fake_qemu):
    """Exit status 1 before the QMP greeting (e.g. ``Bus 'scsi-io0-io1.0' not found``): txnstorm
    built a command line this QEMU refuses (its features were probed), so ERROR, not FAIL."""
    refusal = "qemu-system-x86_64: -device scsi-hd: Bus 'x.0' not found"
    qemu = fake_qemu(tmp_path, f'#!/bin/sh\necho "{refusal}" >&2\nexit 1\n')
    sut = SystemUnderTest(qemu=qemu, qemu_img=qemu, version="9.9.9")
    images = {d.name: tmp_path / f"{d.name}.qcow2" for d in TWO_DISKS_ONE_IOTHREAD.disks}
    vm = Machine(Platform(sut, BootFiles(tmp_path / "k", tmp_path / "i", ""), "tcg"), TWO_DISKS_ONE_IOTHREAD,
                 tmp_path / "log", images)  # fmt: skip
    with pytest.raises(QemuRefusedCommandLine) as refused:
        vm.launch(start_timeout=10)
    assert not isinstance(refused.value, QemuFailure)
    assert str(refused.value) == (
        f"QEMU refused txnstorm's command line (qemu-cmdline.txt): exited with status 1: {refusal}"
    )
    assert vm.rundir is None and vm.returncode == 1


def test_children_die_with_their_parent(tmp_path):
    """PDEATHSIG: a QEMU started by a runner that is SIGKILLed does not survive it."""
    pidfile = tmp_path / "pid"
    runner = textwrap.dedent(f"""
        import time
        from txnstorm.vm import process
        p = process.spawn(["sleep", "60"], stdout=None, stderr=None)
        open({str(pidfile)!r}, "w").write(str(p.pid))
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", runner])
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pidfile.read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"child {child} survived its parent")


def test_a_crash_core_becomes_a_backtrace_in_the_log_dir_and_leaves_nothing(tmp_path, fake_qemu):
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core_pattern {pattern!r} does not write cores into the process's cwd")
    if not shutil.which("gdb"):
        pytest.skip("gdb not installed")
    qemu = fake_qemu(tmp_path)
    sut = SystemUnderTest(qemu=qemu, qemu_img=qemu, version="9.9.9")
    images = {d.name: tmp_path / f"{d.name}.qcow2" for d in TWO_DISKS_ONE_IOTHREAD.disks}
    platform = Platform(sut, BootFiles(tmp_path / "k", tmp_path / "i", ""), "tcg")
    vm = Machine(platform, TWO_DISKS_ONE_IOTHREAD, tmp_path / "log", images)
    with pytest.raises(QemuDied, match=r"SIGABRT.*\(backtrace: qemu-crash-backtrace.txt\)"):
        vm.launch(start_timeout=10)
    assert "#0" in (tmp_path / "log" / "qemu-crash-backtrace.txt").read_text()
    assert vm.rundir is None and not list(Path(tempfile.gettempdir()).glob("txnstorm-vm-*")), "core left behind"
