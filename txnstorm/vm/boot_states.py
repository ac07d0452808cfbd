"""Booted guests restored instead of booted: a cached QEMU migration stream per guest shape.

A cold boot of the tiny guest to SSH costs 2.4-3.4 s under TCG; loading a saved state of the
same guest and reaching SSH costs about 0.5 s (``make bench``).  The state is what QEMU's
``migrate`` writes of a guest that just answered SSH, compressed with zstd; it is cached under
``<cache>/boot-states/<key>/`` with a sha256 manifest, and verified before every use.

The key is everything that makes two guests the same machine (``Machine.shape``: the command line
without sockets, logs, image paths, the SSH port and trace events), the QEMU binary (path, size,
mtime: a rebuilt build dir is another QEMU), the guest image and each image's format and
virtual size.  Disks on a qemu-storage-daemon (vhost-user-blk) are never restored: their state
lives in the daemon.

The first guest of a shape boots cold, is saved, and is then restored, so the test runs on a
restored guest either way (the path every later test of that shape takes; the first costs ~1.5 s
more).  Whatever goes wrong (no zstd, a corrupt or stale state, a QEMU that cannot load it) is
said once in the log, the state is removed, and the guest boots cold: this is a speed-up, never
a verdict.  A QEMU that crashes or hangs while loading a state is retried cold, where its
failure (if it has one) is the test's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from txnstorm.deadline import Deadline
from txnstorm.errors import TxnstormError
from txnstorm.host.assets import GuestImage, sha256_file
from txnstorm.vm.machine import Machine

log = logging.getLogger("txnstorm.vm.boot_states")

FORMAT = 1  # bump when what a state holds changes: every older state becomes a miss
STATE = "state.zst"
MANIFEST = "manifest.json"
SAVE_S = 60.0  # migrate to the file (a 512 MiB guest: ~0.6 s quiet)
LOAD_S = 10.0  # migrate-incoming until the guest runs, and then SSH (quiet: 0.2 + 0.4 s); a stream QEMU
# cannot read leaves 7.2 waiting in "inmigrate" with no status at all: this bounds that too
KEEP = 40  # states kept (~20 MB each: under 1 GB); the least recently used go first


class StateUnusable(TxnstormError):
    """A saved state that cannot be used (said once; the guest then boots cold)."""


def image_shape(path: Path) -> list[object]:
    """[format, virtual size] of an image file, read from its header (qcow2) or its size (raw)."""
    with open(path, "rb") as f:
        header = f.read(32)
    if header[:4] == b"QFI\xfb":
        return ["qcow2", struct.unpack(">Q", header[24:32])[0]]
    return ["raw", path.stat().st_size]


def zstd() -> str | None:
    return shutil.which("zstd")


@dataclass(frozen=True)
class BootStates:
    """The cache of saved guests, under ``root`` (``<cache>/boot-states``)."""

    root: Path

    def key(self, vm: Machine, guest: GuestImage) -> str | None:
        """The shape's key, or None for a machine never restored (disks on a daemon)."""
        if vm.vhost_sockets or any(d.on_daemon for d in vm.topology.disks):
            return None
        binary = Path(vm.sut.qemu).resolve()
        stat = binary.stat()
        identity = {
            "format": FORMAT, "shape": vm.shape(), "qemu": [str(binary), stat.st_size, stat.st_mtime_ns],
            "guest": guest.digest, "images": {name: image_shape(path) for name, path in sorted(vm.images.items())},
        }  # fmt: skip
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]

    def entry(self, key: str) -> Path:
        return self.root / key

    def verified(self, key: str) -> Path | None:
        """The state file of ``key`` if its manifest says it is whole; a state that does not
        match its manifest is removed (StateUnusable)."""
        entry = self.entry(key)
        if not (entry / MANIFEST).exists():
            return None
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            digest = sha256_file(entry / STATE)
        except (OSError, ValueError) as exc:
            self.forget(key)
            raise StateUnusable(f"saved guest {key} unreadable ({exc})") from None
        if digest != manifest.get("sha256"):
            self.forget(key)
            raise StateUnusable(f"saved guest {key} does not match its sha256 manifest")
        os.utime(entry / MANIFEST)  # recently used: kept longest
        return entry / STATE

    def forget(self, key: str) -> None:
        shutil.rmtree(self.entry(key), ignore_errors=True)

    def save(self, vm: Machine, key: str) -> None:
        """Write the running guest of ``vm`` into the cache (it ends paused: quit it after)."""
        self.root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            state = work / STATE
            vm.note(f"saving the booted guest for later tests of this shape ({key})")
            vm.cmd("migrate", uri=f"exec:{shlex.quote(str(zstd()))} -1 -q -o {shlex.quote(str(state))}")
            status = wait_migration(vm, SAVE_S)
            if status != "completed":
                raise StateUnusable(f"saving the guest: migration {status}")
            manifest = {"sha256": sha256_file(state), "size": state.stat().st_size, "qemu": vm.sut.version,
                        "topology": vm.topology.name, "saved": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
            (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            with contextlib.suppress(OSError):  # another test saved the same shape first: keep theirs
                work.rename(self.entry(key))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.prune()

    def load(self, vm: Machine, state: Path) -> None:
        """Launch ``vm`` paused for an incoming state, load ``state``; the guest runs after."""
        vm.incoming = True
        try:
            vm.launch()
        finally:
            vm.incoming = False
        vm.note(f"loading the saved guest {state.parent.name}")
        vm.cmd("migrate-incoming", uri=f"exec:{shlex.quote(str(zstd()))} -d -q -c {shlex.quote(str(state))}")
        status = wait_migration(vm, LOAD_S)
        if status != "completed":
            raise StateUnusable(f"loading the saved guest: migration {status}")
        deadline = Deadline(LOAD_S)
        while vm.cmd("query-status").get("status") != "running":  # QEMU starts it once loaded
            if not deadline.sleep(0.02):
                raise StateUnusable("the loaded guest never ran")

    def prune(self) -> None:
        """Keep the ``KEEP`` most recently used states."""
        entries = [e for e in self.root.iterdir() if (e / MANIFEST).exists()]
        entries.sort(key=lambda e: (e / MANIFEST).stat().st_mtime, reverse=True)
        for stale in entries[KEEP:]:
            shutil.rmtree(stale, ignore_errors=True)


def wait_migration(vm: Machine, seconds: float) -> str:
    """The migration's end status (completed, failed, cancelled), or "timed out"."""
    deadline = Deadline(seconds)
    while True:
        status = vm.cmd("query-migrate").get("status", "none")
        if status in ("completed", "failed", "cancelled"):
            return status
        if not deadline.sleep(0.02):
            return "timed out"
