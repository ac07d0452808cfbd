"""The txnstorm guest for the standalone reproducers that need one (KI-7,
KI-11): where ``make guest`` put it, the QEMU arguments that boot it with SSH
forwarded to 127.0.0.1 only, waiting for it, and the ssh command into it.
Python 3 standard library only."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

READY = "txnstorm-guest: ready"
# fio's random-write storm on {dev}, in the background (the guest has fio built in).
FIO = (
    "fio --name=storm --ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=8 --time_based"
    " --runtime=3600 --norandommap --randrepeat=0 --filename={dev} < /dev/null > /dev/null 2>&1 &"
)


def newest_guest() -> str | None:
    root = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    found = sorted(glob.glob(f"{root}/txnstorm/guests/tiny-*/build-info.json"), key=os.path.getmtime)
    return os.path.dirname(found[-1]) if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_input(programs: dict[str, str | None], guest: str | None) -> str | None:
    """What is wrong, in one line (None: nothing), before anything boots: ``programs`` are
    {option: path} that must be executables; ``guest`` the txnstorm guest dir."""
    if not all(programs.values()) or not guest or not shutil.which("ssh"):
        return f"need {', '.join(programs)}, --guest (run 'make guest') and ssh"
    for option, path in programs.items():
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{option} {path}: not an executable file"
    if not (Path(guest) / "build-info.json").is_file():
        return f"{guest} is not a txnstorm guest dir (no build-info.json); run 'make guest'"
    return None


class Guest:
    """The guest dir, its forwarded SSH port and the QEMU arguments that boot it."""

    def __init__(self, guest: str, tmp: str, accel: str = "tcg", machine: str = "pc") -> None:
        self.dir, self.tmp, self.port = Path(guest), tmp, free_port()
        self.console = Path(tmp, "console.log")
        append = json.loads((self.dir / "build-info.json").read_text())["append"]
        self.args = [
            "-accel", accel, "-machine", machine, "-cpu", "max" if accel == "tcg" else "host",
            "-m", "512", "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot",
            "-serial", f"file:{self.console}",
            "-kernel", str(self.dir / "vmlinux"), "-initrd", str(self.dir / "initramfs.cpio"), "-append", append,
            "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device", "virtio-net-pci,netdev=net0,romfile=",
        ]  # fmt: skip

    def wait_ready(self, proc: subprocess.Popen[str], timeout: float = 300) -> bool:
        """The guest said it is ready (False: it did not in time, or QEMU died; the console is printed)."""
        deadline = time.monotonic() + timeout
        while not self.console.exists() or READY not in self.console.read_text(errors="replace"):
            if time.monotonic() > deadline or proc.poll() is not None:
                text = self.console.read_text(errors="replace") if self.console.exists() else ""
                print("the guest did not boot (console.log):", text[-500:])
                return False
            time.sleep(0.5)
        return True

    def ssh(self, command: str, timeout: float = 60) -> None:
        """Run ``command`` in the guest (its host key pinned, this guest's own key)."""
        known_hosts = Path(self.tmp, "known_hosts")
        kind, key = (self.dir / "host_key.pub").read_text().split()[:2]
        known_hosts.write_text(f"[127.0.0.1]:{self.port} {kind} {key}\n")
        ssh = ["ssh", "-i", str(self.dir / "id_ed25519"), "-p", str(self.port),
               "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
               "root@127.0.0.1"]  # fmt: skip
        subprocess.run([*ssh, command], check=True, timeout=timeout)
