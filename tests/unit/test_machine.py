import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from txnstorm.errors import QemuDied, QemuFailure, QemuHung, QemuRefusedCommandLine
from txnstorm.host.process import describe_exit
from txnstorm.host.sut import SystemUnderTest
from txnstorm.vm.backtrace import main_thread_site
from txnstorm.vm.cmdline import BootFiles
from txnstorm.vm.machine import Machine, Platform
from txnstorm.vm.qemu_process import crash_summary
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD


def test_crash_summary_prefers_the_assertion():
    text = "warning: x\nqemu: nbd/server.c:1: f: Assertion `a' failed.\nAborted\n"
    assert crash_summary(text).endswith("Assertion `a' failed.")
    assert crash_summary("one\nlast line\n") == "last line"
    assert crash_summary("") == "(no stderr)"


def test_describe_exit():
    assert describe_exit(-6) == "killed by SIGABRT"
    assert describe_exit(1) == "exited with status 1"


def machine_of(qemu: Path, tmp_path: Path) -> Machine:
    """A machine of ``qemu`` (a fake that aborts at start) on two disks, its logs in ``log``."""
    sut = SystemUnderTest(qemu=qemu, qemu_img=qemu, version="9.9.9")
    images = {d.name: tmp_path / f"{d.name}.qcow2" for d in TWO_DISKS_ONE_IOTHREAD.disks}
    platform = Platform(sut, BootFiles(tmp_path / "k", tmp_path / "i", ""), "tcg")
    return Machine(platform, TWO_DISKS_ONE_IOTHREAD, tmp_path / "log", images)


def test_qemu_abort_at_start_is_reported_with_signal_and_assertion(tmp_path, fake_qemu):
    qemu = fake_qemu(tmp_path)
    vm = machine_of(qemu, tmp_path)
    # QemuDied, not DeadlineExceeded: a crash must not be reported as a timeout
    with pytest.raises(QemuDied, match=r"killed by SIGABRT: .*Assertion `x == 0' failed"):
        vm.launch(start_timeout=10)
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
        from txnstorm.host import process
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
    vm = machine_of(qemu, tmp_path)
    with pytest.raises(QemuDied, match=r"SIGABRT.*\(backtrace: qemu-crash-backtrace.txt\)"):
        vm.launch(start_timeout=10)
    assert "#0" in (tmp_path / "log" / "qemu-crash-backtrace.txt").read_text()
    assert vm.rundir is None and not list(Path(tempfile.gettempdir()).glob("txnstorm-vm-*")), "core left behind"


# Excerpts of gdb's ``thread apply all bt`` of a hung qemu-storage-daemon 10.2.2 (tests/vhost_user_blk.py).
HUNG_DAEMON = """\
Thread 3 (Thread 0x7f8a302216c0 (LWP 2922) "qemu-storage-da"):
#0  0x00007f8a3103a366 in __ppoll (fds=0x7f8a200034f0, nfds=1) at ../sysdeps/unix/sysv/linux/ppoll.c:42
#3  0x000055711ef8c14b in aio_poll (ctx=<optimized out>, blocking=blocking@entry=true) at util/aio-posix.c:700
#4  0x000055711ee67506 in iothread_run (opaque=opaque@entry=0x557137bd4dc0) at iothread.c:63

Thread 1 (Thread 0x7f8a30b24b80 (LWP 2920) "qemu-storage-da"):
#0  0x00007f8a3103a366 in __ppoll (fds=0x557137bd6c10, nfds=1) at ../sysdeps/unix/sysv/linux/ppoll.c:42
#1  0x000055711efa0b9d in ppoll (__ss=0x0, __timeout=0x0) at /usr/include/x86_64-linux-gnu/bits/poll2.h:64
#2  0x000055711ef8c9c1 in fdmon_poll_wait (ctx=0x557137bd37c0, timeout=-1) at util/fdmon-poll.c:84
#3  0x000055711ef8c14b in aio_poll (ctx=<optimized out>, blocking=blocking@entry=true) at util/aio-posix.c:700
#4  0x000055711ee9c88d in bdrv_drain_all_begin () at block/io.c:528
#5  bdrv_drain_all_begin () at block/io.c:507
#6  0x000055711ee9adc2 in bdrv_graph_wrlock_drained () at block/graph-lock.c:168
#7  0x000055711ee8f057 in blk_insert_bs (blk=blk@entry=0x5571386e05e0) at block/block-backend.c:907
#8  0x000055711ee754c7 in bdrv_open_inherit (filename=filename@entry=0x0) at block.c:4158
#29 0x000055711ee55ff7 in main (argc=19, argv=<optimized out>) at storage-daemon/qemu-storage-daemon.c:434
"""
IDLE_QEMU = """\
Thread 1 (Thread 0x7f (LWP 1) "qemu-system-x86"):
#0  0x00007f in __ppoll (fds=0x55, nfds=12) at ppoll.c:42
#1  0x000055 in qemu_poll_ns (fds=<optimized out>) at util/qemu-timer.c:347
#2  0x000055 in os_host_main_loop_wait (timeout=1000) at util/main-loop.c:305
#3  main_loop_wait (nonblocking=<optimized out>) at util/main-loop.c:592
#4  0x000055 in qemu_main_loop () at system/runstate.c:903
#5  0x000055 in qemu_default_main (opaque=0x0) at system/main.c:50
#6  0x00007f in __libc_start_call_main (main=main@entry=0x55, argc=argc@entry=40) at libc_start_call_main.h:58
#7  0x000055 in main (argc=<optimized out>) at system/main.c:93
"""


def test_a_hang_names_where_the_main_thread_waits():
    """The innermost frames of the thread running ``main`` that are not polling or the main
    loop's own (inlined frames once): what a hang's known issue is matched by."""
    assert main_thread_site(HUNG_DAEMON) == "bdrv_drain_all_begin <- bdrv_graph_wrlock_drained <- blk_insert_bs"
    assert main_thread_site(HUNG_DAEMON, depth=1) == "bdrv_drain_all_begin"
    assert main_thread_site(IDLE_QEMU) == "its main loop (idle)"
    assert main_thread_site("(gdb could not attach)") is None


def test_a_hang_keeps_the_backtrace_with_the_site_in_the_reason(tmp_path, monkeypatch):
    sut = SystemUnderTest(qemu=tmp_path / "q", qemu_img=tmp_path / "q", version="9.9.9")
    vm = Machine(Platform(sut, BootFiles(tmp_path / "k", tmp_path / "i", ""), "tcg"), TWO_DISKS_ONE_IOTHREAD,
                 tmp_path, {})  # fmt: skip
    trace = tmp_path / "qemu-backtrace.txt"
    trace.write_text(HUNG_DAEMON)
    monkeypatch.setattr(vm, "dump_backtrace", lambda: trace)
    hang = QemuHung("QMP transaction: no answer within 60 s")
    vm.keep_backtrace(hang)
    assert str(hang) == (
        "QMP transaction: no answer within 60 s (QEMU main thread in bdrv_drain_all_begin <- "
        "bdrv_graph_wrlock_drained <- blk_insert_bs; backtrace: qemu-backtrace.txt)"
    )
    vm.keep_backtrace(hang)  # a second handler (serving, booted) names it no more
    assert str(hang).count("backtrace:") == 1


def test_a_taken_ssh_port_is_tried_again_with_another(tmp_path, fake_qemu):
    """Tests side by side (JOBS > 1): the port picked free can be taken by another QEMU before this
    one binds it; QEMU refuses the forwarding rule and the machine launches again, twice at most."""
    count = tmp_path / "launches"
    qemu = fake_qemu(tmp_path, textwrap.dedent(f"""\
        #!/bin/sh
        echo x >> {count}
        echo "qemu-system-x86_64: -netdev user,id=n0: could not set up host forwarding rule 'tcp:127.0.0.1:1-:22'" >&2
        exit 1
    """))  # fmt: skip
    sut = SystemUnderTest(qemu=qemu, qemu_img=qemu, version="9.9.9")
    images = {d.name: tmp_path / f"{d.name}.qcow2" for d in TWO_DISKS_ONE_IOTHREAD.disks}
    vm = Machine(Platform(sut, BootFiles(tmp_path / "k", tmp_path / "i", ""), "tcg"), TWO_DISKS_ONE_IOTHREAD,
                 tmp_path / "log", images)  # fmt: skip
    with pytest.raises(QemuRefusedCommandLine, match="host forwarding rule"):
        vm.launch(start_timeout=10)
    assert count.read_text().count("x") == Machine.PORT_TRIES
    assert vm.rundir is None and vm.qmp is None, "every try cleaned up after itself"


def test_the_users_keeping_reaches_every_qemu_process(tmp_path):
    """TXNSTORM_KEEP_CORES and TXNSTORM_QMP_ANSWER_S, as the harness hands them down (a mix-up
    once kept every crash's core and left the answer window at 60 s)."""
    from txnstorm.vm.qemu_process import Keeping
    from txnstorm.vm.storage_daemon import StorageDaemon

    sut = SystemUnderTest(qemu=Path("/q"), qemu_img=Path("/i"), version="9.9.9")
    boot = BootFiles(tmp_path / "k", tmp_path / "i", "")
    vm = Machine(Platform(sut, boot, "tcg"), TWO_DISKS_ONE_IOTHREAD, tmp_path, {})
    assert (vm.keep_cores, vm.qmp_answer_s) == (False, 60.0), "the defaults"
    vm = Machine(Platform(sut, boot, "tcg", keep_cores=True, qmp_answer_s=10.0), TWO_DISKS_ONE_IOTHREAD, tmp_path, {})
    assert (vm.keep_cores, vm.qmp_answer_s) == (True, 10.0)
    daemon = StorageDaemon(Path("/qsd"), TWO_DISKS_ONE_IOTHREAD, tmp_path, {}, Keeping(cores=False, qmp_answer_s=7.0))
    assert (daemon.keep_cores, daemon.qmp_answer_s) == (False, 7.0)
