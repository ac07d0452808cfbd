"""docs/findings: each report's standalone reproducer still does what the
report says, on Debian's QEMU (the default QEMU under test)."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

FINDINGS = Path(__file__).resolve().parents[2] / "docs" / "findings"


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="needs Debian's QEMU (make setup)")
def test_ki5_standalone_reproducer_aborts_qemu():
    run = subprocess.run(
        [sys.executable, str(FINDINGS / "KI-5" / "reproduce.py")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "bdrv_do_drained_end: Assertion `bs->quiesce_counter > 0' failed" in run.stdout
    assert "REPRODUCED" in run.stdout


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="needs Debian's QEMU (make setup)")
def test_ki5_separate_commands_are_refused_not_fatal():
    """The report's control: without the transaction's rollback, QEMU refuses and survives."""
    run = subprocess.run(
        [sys.executable, str(FINDINGS / "KI-5" / "reproduce.py"), "--separate"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "is busy: block device is in use by block job: backup" in run.stdout


def test_every_finding_names_its_known_issue():
    import json

    entries = json.loads((FINDINGS.parents[1] / "known-issues.json").read_text())
    ids = {e["id"] for e in entries}
    folders = [d for d in FINDINGS.iterdir() if d.is_dir() and d.name != "lib"]
    assert folders, "no finding folders"
    for folder in folders:
        assert folder.name in ids, f"{folder.name}: no known issue {folder.name} in known-issues.json"
        assert (folder / "report.md").is_file() and (folder / "reproduce.py").is_file(), f"{folder.name}: incomplete"
        report = f"docs/findings/{folder.name}/report.md"
        assert any(e.get("report") == report for e in entries), f"no known issue links {report}"
    for entry in entries:
        if entry.get("report"):
            assert (FINDINGS.parents[1] / entry["report"]).is_file(), f"{entry['id']}: {entry['report']} missing"


def test_qmp_lite_waits_for_a_socket_that_is_bound_but_not_yet_listening(tmp_path):
    """QEMU's QMP socket file appears at bind(), connections are accepted only after listen(): a
    reproducer that connects in between was refused (KI-5's, once, on a loaded fresh machine)."""
    import socket
    import threading

    sys.path.insert(0, str(FINDINGS / "lib"))
    from qmp_lite import Qmp

    path = str(tmp_path / "qmp.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)  # the file exists, nothing listens yet
    server.settimeout(15)  # a client that gave up must not leave the thread in accept()

    def qemu_later() -> None:
        time.sleep(0.5)
        server.listen(1)
        conn, _ = server.accept()
        with conn, conn.makefile("rw") as f:
            f.write('{"QMP": {"version": {}}}\n')
            f.flush()
            f.readline()  # qmp_capabilities
            f.write('{"return": {}}\n')
            f.flush()

    thread = threading.Thread(target=qemu_later, daemon=True)
    thread.start()
    try:
        qmp = Qmp(path, timeout=10, echo=False)
        qmp.close()
    finally:
        thread.join(timeout=10)
        server.close()
