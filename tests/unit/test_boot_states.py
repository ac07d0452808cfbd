"""Saved guests: one key per guest shape (never per run), verified before use, pruned, and a
restore that goes wrong costs a cold boot, never a verdict.  The last two tests boot Debian's
QEMU (~10 s) with the real guest, from the caller's cache (conftest's ``guest_cache``; built there
once if missing)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from txnstorm.errors import UserError
from txnstorm.host import assets
from txnstorm.host.images import QemuImg
from txnstorm.host.sut import SystemUnderTest
from txnstorm.settings import Settings
from txnstorm.vm import boot_states
from txnstorm.vm.boot import booted
from txnstorm.vm.boot_states import MANIFEST, STATE, BootStates, StateUnusable, image_shape
from txnstorm.vm.cmdline import BootFiles
from txnstorm.vm.machine import Machine, Platform
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD, Disk, Topology

REAL_QEMU = Path("/usr/bin/qemu-system-x86_64")


class FakeGuest:
    digest = "guest-digest"


def machine(tmp_path: Path, qemu: Path, topology: Topology = TWO_DISKS_ONE_IOTHREAD, run: str = "a",
            size: int = 64 << 20) -> Machine:  # fmt: skip
    images = {}
    for disk in topology.disks:
        path = tmp_path / run / f"{disk.name}.raw"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        with open(path, "r+b") as f:
            f.truncate(size)
        images[disk.name] = path
    sut = SystemUnderTest(qemu=qemu, qemu_img=qemu, version="9.9.9")
    platform = Platform(sut, BootFiles(tmp_path / "k", tmp_path / "i", "console=ttyS0"), "tcg")
    return Machine(platform, topology, tmp_path / run / "log", images)


def test_one_key_per_shape_not_per_run(tmp_path, fake_qemu):
    qemu = fake_qemu(tmp_path)
    states = BootStates(tmp_path / "states")
    first, second = machine(tmp_path, qemu, run="a"), machine(tmp_path, qemu, run="b")
    key = states.key(first, FakeGuest())
    assert key == states.key(second, FakeGuest()), "paths and logs are per run"
    bigger = machine(tmp_path, qemu, run="c", size=128 << 20)
    assert states.key(bigger, FakeGuest()) != states.key(first, FakeGuest()), "the guest saw another disk size"
    other = Topology("other", (Disk("disk0"), Disk("disk1", iothread=None)))
    assert states.key(machine(tmp_path, qemu, other, run="d"), FakeGuest()) != states.key(first, FakeGuest())
    os.utime(qemu, ns=(1, 1))  # a rebuilt binary is another QEMU
    assert states.key(machine(tmp_path, qemu, run="e"), FakeGuest()) != key


def test_disks_on_a_daemon_are_never_restored(tmp_path, fake_qemu):
    vm = machine(tmp_path, fake_qemu(tmp_path))
    vm.vhost_sockets = {"disk0": tmp_path / "vhost.sock"}
    assert BootStates(tmp_path / "states").key(vm, FakeGuest()) is None


def test_image_shape_reads_a_qcow2_header_and_a_raw_size(tmp_path, qemu_img):
    qcow2 = qemu_img.create(tmp_path / "a.qcow2", "32M")
    assert image_shape(qcow2) == ["qcow2", 32 << 20]
    raw = tmp_path / "b.raw"
    raw.write_bytes(b"\0" * 4096)
    assert image_shape(raw) == ["raw", 4096]


def test_a_state_that_does_not_match_its_manifest_is_removed(tmp_path):
    states = BootStates(tmp_path / "states")
    entry = states.entry("k")
    entry.mkdir(parents=True)
    (entry / STATE).write_bytes(b"saved")
    (entry / MANIFEST).write_text(json.dumps({"sha256": assets.sha256_file(entry / STATE)}))
    assert states.verified("k") == entry / STATE
    (entry / STATE).write_bytes(b"savex")
    with pytest.raises(StateUnusable, match="does not match its sha256 manifest"):
        states.verified("k")
    assert not entry.exists()
    assert states.verified("k") is None, "a miss, after"


def test_only_the_most_recently_used_states_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(boot_states, "KEEP", 2)
    states = BootStates(tmp_path / "states")
    for age, key in enumerate(("new", "mid", "old")):
        entry = states.entry(key)
        entry.mkdir(parents=True)
        (entry / STATE).write_bytes(b"x")
        (entry / MANIFEST).write_text("{}")
        os.utime(entry / MANIFEST, (1000 - age, 1000 - age))
    states.prune()
    assert sorted(p.name for p in states.root.iterdir()) == ["mid", "new"]


def test_txnstorm_boot_is_restore_or_cold():
    assert Settings.from_env({}).restore_guests
    assert not Settings.from_env({"TXNSTORM_BOOT": "cold"}).restore_guests
    with pytest.raises(UserError, match="TXNSTORM_BOOT=warm is not one of restore, cold"):
        Settings.from_env({"TXNSTORM_BOOT": "warm"})


@pytest.fixture
def real_guest(tmp_path, guest_cache):
    if not REAL_QEMU.exists() or not shutil.which("zstd"):
        pytest.skip("needs Debian's QEMU and zstd (make setup)")
    try:
        guest = assets.ensure_guest(allow_build=True, say=lambda _: None, cache=guest_cache)
    except UserError as exc:  # e.g. the guest's host packages missing, not root
        pytest.skip(f"no guest and it cannot be built here: {exc}")
    sut = SystemUnderTest(qemu=REAL_QEMU, qemu_img=REAL_QEMU.with_name("qemu-img"), version="7.2")
    return sut, guest


def boot_once(tmp_path: Path, real_guest, states: BootStates, run: str) -> tuple[str, str]:
    sut, guest = real_guest
    topology = Topology("restore-test", (Disk("disk0"),))
    img = QemuImg(sut.qemu_img)
    images = {"disk0": img.create(tmp_path / f"{run}.qcow2", "64M")}
    vm = Machine(Platform(sut, guest.boot_files(), "tcg"), topology, tmp_path / run, images)
    try:
        with booted(vm, guest, states=states) as b:
            return b.how, b.guest.run("cat /sys/block/vda/size", timeout=10).check().stdout.strip()
    finally:
        vm.kill()


@pytest.mark.long(6)
def test_the_first_guest_of_a_shape_is_saved_and_the_next_restored(tmp_path, real_guest):
    states = BootStates(tmp_path / "states")
    assert boot_once(tmp_path, real_guest, states, "first") == ("restored", "131072"), "saved, then restored"
    assert boot_once(tmp_path, real_guest, states, "second") == ("restored", "131072")
    (entry,) = states.root.iterdir()
    assert json.loads((entry / MANIFEST).read_text())["topology"] == "restore-test"


@pytest.mark.long(8)
def test_a_state_qemu_cannot_load_costs_a_cold_boot_and_is_removed(tmp_path, real_guest):
    states = BootStates(tmp_path / "states")
    boot_once(tmp_path, real_guest, states, "first")
    (entry,) = states.root.iterdir()
    state = entry / STATE  # whole by its manifest, but its stream ends after 1 MiB: QEMU exits
    stream = subprocess.run(["zstd", "-d", "-q", "-c", str(state)], capture_output=True, check=True).stdout
    subprocess.run(["zstd", "-1", "-q", "-f", "-o", str(state)], input=stream[: 1 << 20], check=True)
    manifest = json.loads((entry / MANIFEST).read_text())
    (entry / MANIFEST).write_text(json.dumps({**manifest, "sha256": assets.sha256_file(state)}))
    assert boot_once(tmp_path, real_guest, states, "second") == ("booted (restore failed)", "131072")
    assert not entry.exists()
