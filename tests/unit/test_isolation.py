"""Isolation rules: private sockets, loopback-only SSH, no key in the repo."""

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from txnstorm.host.scratch import make_private_dir

REPO = Path(__file__).resolve().parents[2]
MARKER = b"-----BEGIN " + b"OPENSSH PRIVATE KEY"  # split, so this file does not match itself


def test_socket_dirs_are_private(tmp_path):
    d = make_private_dir("vm", base=tmp_path)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_no_private_key_is_tracked():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False).stdout
    if not tracked:
        return  # not a git checkout (e.g. an sdist): nothing to check
    for name in tracked.splitlines():
        path = REPO / name
        if path.is_file() and path.stat().st_size < 1 << 20:
            assert MARKER not in path.read_bytes(), f"{name} holds a private key"


def test_guest_network_is_restricted_and_ssh_loopback_only():
    source = (REPO / "txnstorm" / "vm" / "cmdline.py").read_text()
    assert "restrict=on" in source and "hostfwd=tcp:127.0.0.1:" in source


def test_a_child_of_a_txnstorm_that_is_pid_1_runs(tmp_path):
    """In a container txnstorm may be PID 1: its children's parent is 1 and that is no dead parent
    (every QEMU used to exit 1 there, 'capability probe: QEMU exited with status 1')."""
    script = (
        "import os, subprocess, sys\n"
        "from txnstorm.host import process\n"
        "child = process.spawn(['true'], subprocess.DEVNULL, subprocess.DEVNULL)\n"
        "sys.exit(child.wait())\n"
    )
    unshare = ["unshare", "--pid", "--fork", "--mount-proc"]
    probe = subprocess.run([*unshare, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.decode().strip()}")
    done = subprocess.run([*unshare, sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
