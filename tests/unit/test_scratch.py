import os
import stat
import subprocess

from txnstorm.scratch import OWNER_FILE, make_private_dir, private_dir, sweep_stale


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
