"""txnstorm.vm.storage_daemon: finding the daemon of the QEMU under test,
its command line, and (with Debian's daemon, when installed) its lifecycle:
a crash is the daemon's exit report, quitting leaves nothing behind, and
the NBD storm counts the writes it was answered."""

import os
import shlex
import shutil
import signal
import time
from pathlib import Path

import pytest

from txnstorm.errors import QemuDied
from txnstorm.vm.storage_daemon import (
    DAEMON_BINARY,
    DaemonSpec,
    StorageDaemon,
    build_args,
    find_daemon,
    missing_daemon,
    serving,
)
from txnstorm.vm.topology import Disk, Topology

TOPOLOGY = Topology(
    "qsd-unit", (Disk("disk0", iothread="io0", size="4M"), Disk("disk1", iothread=None, size="4M"))
)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


# -- finding it ------------------------------------------------------------------
def test_found_beside_the_qemu_under_test(tmp_path):
    qemu = _executable(tmp_path / "bin" / "qemu-system-x86_64")
    daemon = _executable(tmp_path / "bin" / DAEMON_BINARY)
    assert find_daemon(qemu) == daemon


def test_found_in_the_build_dir_layout(tmp_path):
    qemu = _executable(tmp_path / "build" / "qemu-system-x86_64")
    daemon = _executable(tmp_path / "build" / "storage-daemon" / DAEMON_BINARY)
    assert find_daemon(qemu) == daemon


def test_beside_wins_over_the_build_dir_layout(tmp_path):
    qemu = _executable(tmp_path / "qemu-system-x86_64")
    beside = _executable(tmp_path / DAEMON_BINARY)
    _executable(tmp_path / "storage-daemon" / DAEMON_BINARY)
    assert find_daemon(qemu) == beside


def test_not_executable_or_elsewhere_is_none(tmp_path, monkeypatch):
    qemu = _executable(tmp_path / "q" / "qemu-system-x86_64")
    (tmp_path / "q" / DAEMON_BINARY).write_text("not executable")
    other = _executable(tmp_path / "elsewhere" / DAEMON_BINARY)
    monkeypatch.setenv("PATH", str(other.parent))  # another QEMU's daemon on PATH is never taken
    assert find_daemon(qemu) is None
    line = missing_daemon(qemu)
    assert "\n" not in line and str(qemu) in line and "storage-daemon/qemu-storage-daemon" in line


# -- its command line ----------------------------------------------------------------
def _spec(base: Path) -> DaemonSpec:
    return DaemonSpec(base / "qmp.sock", base / "nbd.sock", {"disk0": base / "d0.qcow2", "disk1": base / "d1.qcow2"})


def _options(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def test_command_line_images_iothread_exports_qmp(tmp_path):
    args = build_args(Path("/x/qemu-storage-daemon"), TOPOLOGY, _spec(tmp_path))
    assert args[0] == "/x/qemu-storage-daemon"
    assert _options(args, "--object") == ["iothread,id=io0"]
    assert _options(args, "--blockdev") == [
        f"driver=file,node-name=disk0-file,filename={tmp_path}/d0.qcow2,aio=threads",
        "driver=qcow2,node-name=disk0,file=disk0-file",
        f"driver=file,node-name=disk1-file,filename={tmp_path}/d1.qcow2,aio=threads",
        "driver=qcow2,node-name=disk1,file=disk1-file",
    ]
    assert _options(args, "--nbd-server") == [f"addr.type=unix,addr.path={tmp_path}/nbd.sock"]
    assert _options(args, "--export") == [
        "type=nbd,id=disk0,node-name=disk0,name=disk0,writable=on,iothread=io0",
        "type=nbd,id=disk1,node-name=disk1,name=disk1,writable=on",  # main loop: no iothread=
    ]
    assert _options(args, "--chardev") == [f"socket,id=qmp0,path={tmp_path}/qmp.sock,server=on,wait=off"]
    assert _options(args, "--monitor") == ["chardev=qmp0"]
    # Images, the server and the exports before QMP; every export after the server.
    assert args.index("--nbd-server") < args.index("--export") < args.index("--chardev")


def test_commas_in_paths_are_doubled(tmp_path):
    base = tmp_path / "a,b"
    args = build_args(Path("qsd"), TOPOLOGY, _spec(base))
    assert f"filename={tmp_path}/a,,b/d0.qcow2," in _options(args, "--blockdev")[0]
    assert _options(args, "--nbd-server") == [f"addr.type=unix,addr.path={tmp_path}/a,,b/nbd.sock"]
    assert f"path={tmp_path}/a,,b/qmp.sock," in _options(args, "--chardev")[0]


def test_direct_io_and_aio_of_a_disk(tmp_path):
    topology = Topology("qsd-aio", (Disk("disk0", aio="native", cache_direct=True), Disk("disk1")))
    spec = _spec(tmp_path)
    first = _options(build_args(Path("qsd"), topology, spec), "--blockdev")[0]
    assert first.endswith(",aio=native,cache.direct=on")


# -- the real daemon (Debian's, when installed) ----------------------------------------
@pytest.fixture
def daemon(tmp_path, qemu_img):
    binary = shutil.which(DAEMON_BINARY)
    if not binary:
        pytest.skip("qemu-storage-daemon not installed (Debian: qemu-system-common)")
    images = {d.name: qemu_img.create(tmp_path / f"{d.name}.qcow2", d.size) for d in TOPOLOGY.disks}
    d = StorageDaemon(Path(binary), TOPOLOGY, tmp_path / "log", images)
    yield d
    d.kill()


def test_daemon_serves_exports_and_quits_cleanly(daemon):
    with serving(daemon):
        assert daemon.cmd("query-version")["qemu"]["major"] >= 7
        assert daemon.root_node("disk0") == "disk0"
        assert daemon.answers_qmp()
        rundir, pid = daemon.rundir, daemon.pid
        assert daemon.nbd_socket.exists()
        assert daemon.export_uri("disk1") == f"nbd+unix:///disk1?socket={daemon.nbd_socket}"
    assert daemon.returncode == 0 and not rundir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    cmdline = (daemon.logdir / "qemu-cmdline.txt").read_text()
    assert shlex.split(cmdline)[0] == str(daemon.binary)
    assert '"execute": "quit"' in (daemon.logdir / "qmp.log").read_text()


def test_daemon_crash_is_its_exit_report(daemon):
    daemon.launch()
    os.kill(daemon.pid, signal.SIGABRT)
    deadline = time.monotonic() + 10
    while daemon.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(QemuDied, match="^qemu-storage-daemon killed by SIGABRT"):
        daemon.check_alive()  # what the writers' counters ask first (NbdWriters.write_ops)
    daemon.shutdown()


@pytest.mark.long(2.6)
def test_a_hung_daemon_is_killed_without_asking_it_to_quit(daemon):
    """A process that left a QMP command unanswered is stuck in its main loop: neither ``quit``
    nor SIGTERM's handler would run, so shutdown SIGKILLs it at once (it used to wait 5 s for
    each before the SIGKILL)."""
    from txnstorm.errors import QemuHung

    daemon.launch()
    daemon.qmp.command_timeout = 0.5
    os.kill(daemon.pid, signal.SIGSTOP)  # hung: alive, answering nothing
    with pytest.raises(QemuHung, match="no answer within"):
        daemon.cmd("query-version")
    assert daemon.shutdown() == -signal.SIGKILL
    assert '"execute": "quit"' not in (daemon.logdir / "qmp.log").read_text()
    assert daemon.died_at_shutdown() is None, "our kill, not a crash"


def test_nbd_storm_counts_answered_writes(daemon):
    pytest.importorskip("nbd", reason="Debian's python3-libnbd is not installed (make setup)")
    from txnstorm.workload.nbd_storm import NbdStorm, NbdStorms

    storms = None
    try:
        with serving(daemon):
            storms = NbdStorms({
                d.name: NbdStorm(daemon.export_uri(d.name), 1 << 20, daemon.logdir, d.name) for d in TOPOLOGY.disks
            })  # fmt: skip
            storms.start()
            first = storms.writes()
            time.sleep(0.5)
            later = storms.writes()
            assert storms.is_running() and all(later[d] > first[d] for d in later), (first, later)
            final = storms.stop()
            assert all(final[d] >= later[d] for d in final)
    finally:  # connections stay open until the daemon quit (KI-1)
        if storms is not None:
            storms.close()
    assert not storms.is_running()


def test_storm_payload_and_arguments(tmp_path):
    from txnstorm.workload.nbd_storm import parse_args, payload

    assert len(payload(1)) == 4096 and payload(1) != payload(2)
    args = parse_args(["nbd+unix:///d?socket=/s", "0x100000", "8", str(tmp_path / "count"), "--keep-open"])
    assert (args.limit, args.depth, args.keep_open) == (1 << 20, 8, True)
    for bad in (["u", "100", "8", "c"], ["u", "4096", "0", "c"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


# -- what the rule at the end of every test sees (harness.death_of_a_qemu) ----------------
def test_a_daemon_that_quit_as_asked_is_no_death(daemon):
    with serving(daemon):
        daemon.note("round 1: firing")
    assert daemon.death() is None


def test_a_daemon_that_died_unasked_is_a_death_at_its_stage(daemon):
    """Whatever noticed it (an NBD client, a socket): killed before it was asked to quit."""
    daemon.launch()
    daemon.note('round 2: firing {"atomic": true}')
    os.kill(daemon.pid, signal.SIGABRT)
    deadline = time.monotonic() + 10
    while daemon.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.shutdown()
    death = daemon.death()
    assert isinstance(death, QemuDied)
    assert death.reason().startswith("QEMU crashed at 'round 2: firing': qemu-storage-daemon killed by SIGABRT")


def test_a_daemon_that_answers_no_quit_is_a_hang_with_its_stacks(daemon):
    from txnstorm.errors import QemuHung

    daemon.qmp_answer_s = 1.0  # the user's QMP window (TXNSTORM_QMP_ANSWER_S), shortened for the test
    daemon.launch()
    daemon.note("storm stopping")
    os.kill(daemon.pid, signal.SIGSTOP)  # alive, answering nothing: the quit goes unanswered
    daemon.shutdown()
    death = daemon.death()
    assert isinstance(death, QemuHung), death
    said = "QEMU hung at 'storm stopping': qemu-storage-daemon did not answer quit within 1 s"
    assert death.reason().startswith(said)
    assert "backtrace: qemu-backtrace.txt" in death.reason()


def test_a_running_daemon_that_answers_is_no_death(daemon):
    daemon.launch()
    assert daemon.death() is None
    assert daemon.stage.startswith("at 'qemu-storage-daemon up: NBD server ")
    daemon.shutdown()
