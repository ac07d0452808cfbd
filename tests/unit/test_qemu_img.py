"""qemu-img is the QEMU under test's too: its crash or hang is a FAIL of that QEMU, and it never
outlives the test that started it (a fake qemu-img, no QEMU)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from txnstorm.errors import QemuDied, QemuHung
from txnstorm.host.images import QemuImg


def fake(tmp_path: Path, body: str) -> QemuImg:
    script = tmp_path / "qemu-img"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return QemuImg(script)


def test_a_qemu_img_killed_by_a_signal_is_qemu_crashed(tmp_path):
    img = fake(tmp_path, 'echo "block/io.c:63: bdrv_parent_drained_begin_single: Assertion failed" >&2; kill -ABRT $$')
    with pytest.raises(QemuDied, match=r"^qemu-img create killed by SIGABRT: block/io.c:63: .*Assertion failed$"):
        img.create(tmp_path / "a.qcow2", "1M")


def test_a_qemu_img_that_does_not_end_is_qemu_hung_and_killed(tmp_path):
    img = fake(tmp_path, f"echo $$ > {tmp_path}/pid; exec sleep 60")
    with pytest.raises(QemuHung, match=r"^qemu-img compare did not end in 0.5 s \(killed\): qemu-img compare a b$"):
        img.run(["compare", "a", "b"], timeout=0.5)
    pid = int((tmp_path / "pid").read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_create_that_hangs_is_qemu_hung_long_before_a_tests_timeout(tmp_path, monkeypatch):
    """A drain mutant hung qemu-img create: the test was INTERRUPTED at 300 s, no reason given."""
    from txnstorm.host import images

    assert images.CREATE_TIMEOUT_S <= 60
    monkeypatch.setattr(images, "CREATE_TIMEOUT_S", 0.5)
    with pytest.raises(QemuHung, match=r"^qemu-img create did not end in 0.5 s \(killed\)"):
        fake(tmp_path, "exec sleep 60").create(tmp_path / "a.qcow2", "1M")


def test_an_error_status_is_still_the_callers_to_judge(tmp_path):
    assert fake(tmp_path, "echo differ; exit 1").run(["compare", "a", "b"]).returncode == 1


ORPHAN = textwrap.dedent("""
    import sys
    from txnstorm.host.images import QemuImg
    QemuImg(sys.argv[1]).run(["check", "x"])
""")


def test_a_qemu_img_dies_with_the_test_process_that_started_it(tmp_path):
    """Avocado's timeout kills the test's process: its qemu-img must not run on."""
    img = fake(tmp_path, f"echo $$ > {tmp_path}/pid; exec sleep 60")
    test = subprocess.Popen([sys.executable, "-c", ORPHAN, str(img.binary)], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 20
    while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int((tmp_path / "pid").read_text())
    test.send_signal(signal.SIGKILL)
    test.wait()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = Path(f"/proc/{pid}").exists()
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive
