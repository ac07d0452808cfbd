"""txnstorm.workload.nbd and txnstorm.workload.nbd_stamps against QEMU's real NBD server.

No guest is needed: a Machine is launched whose "qemu-system-x86_64" is a
small wrapper running ``qemu-storage-daemon`` with the same -blockdev and
-object options and the Machine's QMP socket.  The block layer, QMP, NBD
server and libnbd client are all real; only the emulator around them is
left out.
"""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from txnstorm.errors import QMPCommandError
from txnstorm.host.images import nbd_uri
from txnstorm.host.sut import SystemUnderTest
from txnstorm.oracles.stamps import judge
from txnstorm.vm.cmdline import BootFiles
from txnstorm.vm.machine import Machine, Platform
from txnstorm.vm.topology import Disk, Topology
from txnstorm.workload import nbd
from txnstorm.workload.nbd_stamps import READY, NbdStampWriter, StampWriterFailed, parse_args
from txnstorm.workload.stamp_format import StampRegion

pytest.importorskip("nbd", reason="Debian's python3-libnbd is not installed (make setup)")

STORAGE_DAEMON_AS_QEMU = """#!/bin/bash
# qemu-system-x86_64 stand-in: same block layer and QMP, no guest.
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -chardev) case "$2" in socket,id=qmp0,*) args+=(--chardev "$2" --monitor chardev=qmp0);; esac; shift 2;;
    -blockdev|-object) args+=("-$1" "$2"); shift 2;;
    -nodefaults|-no-user-config|-no-reboot) shift;;
    *) shift 2;;
  esac
done
exec qemu-storage-daemon "${args[@]}"
"""
TOPOLOGY = Topology("nbd-unit", (Disk("disk0", iothread=None, size="4M"), Disk("disk1", iothread=None, size="4M")))
REGION = StampRegion.at_end(4 << 20, slots=16)


@pytest.fixture
def vm(tmp_path, qemu_img):
    if not shutil.which("qemu-storage-daemon"):
        pytest.skip("qemu-storage-daemon not installed (Debian: qemu-system-common)")
    wrapper = tmp_path / "qemu-system-x86_64"
    wrapper.write_text(STORAGE_DAEMON_AS_QEMU)
    wrapper.chmod(0o755)
    images = {d.name: qemu_img.create(tmp_path / f"{d.name}.qcow2", d.size) for d in TOPOLOGY.disks}
    sut = SystemUnderTest(qemu=wrapper, qemu_img=qemu_img.binary, version="0.0.0")
    platform = Platform(sut, BootFiles(tmp_path / "k", tmp_path / "i", ""), "tcg")
    machine = Machine(platform, TOPOLOGY, tmp_path / "log", images)
    machine.launch(start_timeout=20)
    try:
        yield machine
    finally:
        machine.shutdown()


def test_server_socket_is_private_and_uri_is_libnbd_form(vm):
    sock = nbd.start_server(vm)
    assert sock.parent == vm.rundir and oct(sock.parent.stat().st_mode & 0o777) == "0o700"
    assert sock.is_socket()
    link = nbd.export(vm, "disk0", "d0", writable=False)
    assert link == f"nbd+unix:///d0?socket={sock}"


def test_write_flush_read_round_trip(vm):
    nbd.start_server(vm)
    link = nbd.export(vm, "disk0", "d0", writable=True)
    with nbd.NbdClient(link) as client:
        assert client.size == 4 << 20 and not client.read_only
        client.pwrite(b"\x5a" * 4096, 8192)
        client.flush()
        assert client.pread(4096, 8192) == b"\x5a" * 4096
    assert not client.connected


def test_read_only_export_refuses_writes_with_a_clear_error(vm):
    nbd.start_server(vm)
    link = nbd.export(vm, "disk0", "d0", writable=False)
    with nbd.NbdClient(link) as client, pytest.raises(nbd.NbdError, match=r"NBD write of 4096 bytes at 0 on nbd\+unix"):
        client.pwrite(b"x" * 4096, 0)


def test_unknown_export_and_dead_server_are_clear_errors(vm, tmp_path):
    sock = nbd.start_server(vm)
    with pytest.raises(nbd.NbdError, match="server has no export named 'nope'"):
        nbd.NbdClient(nbd_uri(sock, "nope")).connect()
    with pytest.raises(nbd.NbdError, match=r"NBD connect to .* failed"):
        nbd.NbdClient(nbd_uri(tmp_path / "no.sock", "x")).connect()
    with pytest.raises(nbd.NbdError, match="not connected"):
        nbd.NbdClient(nbd_uri(sock, "x")).pread(1, 0)


def test_export_of_a_missing_node_names_it(vm):
    nbd.start_server(vm)
    with pytest.raises(nbd.NbdError, match="exporting node 'nope' as 'x' failed"):
        nbd.export(vm, "nope", "x", writable=True)


def test_remove_export_waits_for_qemu(vm):
    nbd.start_server(vm)
    link = nbd.export(vm, "disk0", "d0", writable=True)
    nbd.remove_export(vm, "d0")
    assert vm.cmd("query-block-exports") == []
    with pytest.raises(nbd.NbdError, match="no export named 'd0'"):
        nbd.NbdClient(link).connect()


def test_start_server_falls_back_to_the_flat_address_only_when_the_shape_is_refused(tmp_path):
    class FakeVM:
        rundir = tmp_path

        def __init__(self, refuse: str) -> None:
            self.refuse, self.calls = refuse, []

        def cmd(self, name, **args):
            self.calls.append(args["addr"])
            if "data" in args["addr"] and self.refuse:
                raise QMPCommandError(name, "GenericError", self.refuse)

        def note(self, text):
            pass

    modern = FakeVM("Parameter 'addr.path' is missing")
    nbd.start_server(modern)
    assert modern.calls == [nbd.legacy_unix_addr(tmp_path / "nbd.sock"), nbd.flat_unix_addr(tmp_path / "nbd.sock")]
    busy = FakeVM("NBD server already running")
    with pytest.raises(nbd.NbdError, match="already running"):
        nbd.start_server(busy)
    assert len(busy.calls) == 1


def test_stamp_writer_keeps_the_protocol_and_reports_generations(vm, tmp_path):
    nbd.start_server(vm)
    links = [nbd.export(vm, d.name, d.name, writable=True) for d in TOPOLOGY.disks]
    writer = NbdStampWriter(links[0], links[1], REGION, tmp_path).start()
    try:
        time.sleep(0.5)
        generations = writer.stop()
    finally:
        writer.close()
    assert generations > 10
    with nbd.NbdClient(links[0]) as a, nbd.NbdClient(links[1]) as b:
        verdict = judge(a.pread(REGION.size, REGION.offset), b.pread(REGION.size, REGION.offset))
    assert (verdict.a, verdict.b) == (generations, generations), verdict.describe()


def test_keep_open_holds_the_connections_until_closed(vm, tmp_path):
    nbd.start_server(vm)
    links = [nbd.export(vm, d.name, d.name, writable=True) for d in TOPOLOGY.disks]
    writer = NbdStampWriter(links[0], links[1], REGION, tmp_path, keep_open=True).start()
    try:
        assert writer.stop() > 0
        assert writer.running(), "--keep-open: the writer must wait with its connections open"
        assert len(vm.cmd("query-block-exports")) == 2
    finally:
        assert writer.close() == 0
    assert not writer.running()


def test_stamp_writer_that_cannot_connect_says_why(vm, tmp_path):
    sock = nbd.start_server(vm)
    writer = NbdStampWriter(nbd_uri(sock, "a"), nbd_uri(sock, "b"), REGION, tmp_path)
    with pytest.raises(StampWriterFailed, match="exited with status 1 while connecting: .*no export named 'a'"):
        writer.start()


def test_command_line_stops_on_sigterm_and_prints_generations(vm, tmp_path):
    nbd.start_server(vm)
    links = [nbd.export(vm, d.name, d.name, writable=True) for d in TOPOLOGY.disks]
    args = [sys.executable, "-m", "txnstorm.workload.nbd_stamps", *links, str(REGION.offset), str(REGION.slots), "60"]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        # After READY its stop signals are blocked and its clients connected: a SIGTERM sent a
        # fixed second after the start killed a child still importing on a loaded host.
        said = proc.stderr.readline()
        assert said.strip() == READY, said
        time.sleep(0.5)  # writing now: some generations before the stop
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.startswith("generations ") and int(out.split()[1]) > 0


def test_command_line_validates_the_region():
    with pytest.raises(SystemExit):
        parse_args(["a", "b", "100", "4", "1"])
    assert parse_args(["a", "b", "0x1000", "4", "1", "--keep-open"]).keep_open
