import os
import stat
import subprocess
import sys

from txnstorm.host.scratch import OWNER_FILE, make_private_dir, private_dir, sweep_stale


def test_private_dir_is_0700_and_removed(tmp_path):
    with private_dir("t", base=tmp_path) as d:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        assert (d / OWNER_FILE).read_text().strip() == str(os.getpid())
    assert not d.exists()


def test_sweep_removes_only_dirs_of_dead_owners(tmp_path):
    mine = make_private_dir("alive", base=tmp_path)
    dead = make_private_dir("dead", base=tmp_path)
    child = subprocess.Popen(["true"])
    child.wait()
    (dead / OWNER_FILE).write_text(f"{child.pid}\n")
    foreign = tmp_path / "txnstorm-foreign"
    foreign.mkdir()  # no owner file: not ours to judge
    assert sweep_stale(tmp_path) == [dead]
    assert mine.exists() and foreign.exists() and not dead.exists()


def test_a_process_that_exits_with_a_dir_in_use_removes_it(tmp_path):
    """Avocado ends an interrupted test's process while its thread still boots:
    the dirs it made must not outlive it (no sweep needed)."""
    code = (
        "import threading, time\n"
        "from pathlib import Path\n"
        "from txnstorm.host.scratch import make_private_dir\n"
        f"def boot(): print(make_private_dir('vm', base=Path({str(tmp_path)!r})), flush=True); time.sleep(60)\n"
        "threading.Thread(target=boot, daemon=True).start()\n"
        "time.sleep(0.5)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().startswith(str(tmp_path / "txnstorm-vm-"))
    assert list(tmp_path.iterdir()) == []


def test_sweep_looks_in_every_temp_root_var_tmp_included(tmp_path, monkeypatch):
    """`scripts/txnstorm sweep`: a dead test's QEMU dir (txnstorm-vm-*) is in /var/tmp, Avocado's temp dir."""
    from pathlib import Path

    from txnstorm.host import scratch

    assert Path("/var/tmp") in scratch.temp_roots() or not Path("/var/tmp").is_dir()
    roots = [tmp_path / "tmp", tmp_path / "var-tmp"]
    for root in roots:
        root.mkdir()
    monkeypatch.setattr(scratch, "temp_roots", lambda: roots)
    child = subprocess.Popen(["true"])
    child.wait()
    dead = [make_private_dir(label, base=root) for label, root in (("run", roots[0]), ("vm", roots[1]))]
    for d in dead:
        (d / OWNER_FILE).write_text(f"{child.pid}\n")
    assert sweep_stale() == dead and dead[1].name.startswith("txnstorm-vm-")
