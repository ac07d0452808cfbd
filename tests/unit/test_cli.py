import subprocess
import sys


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "txnstorm.runner.cli", *args], capture_output=True, text=True, env=env)


def test_bad_qemu_is_one_line_and_exit_2(tmp_path):
    import os

    env = dict(os.environ, QEMU=str(tmp_path / "no-such-qemu"))
    proc = run_cli("preflight", env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no such file" in lines[0] and "Traceback" not in proc.stderr


def test_bad_accel_is_one_line(tmp_path, monkeypatch):
    import os

    from txnstorm.errors import UserError
    from txnstorm.vm import accel

    try:
        accel.choose("hvf", None, None, cache=tmp_path)  # type: ignore[arg-type]
    except UserError as exc:
        assert "ACCEL=hvf" in str(exc)
    else:
        raise AssertionError("bad ACCEL accepted")
    assert os.environ is not None


def test_unknown_command_is_usage_error():
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_the_nightly_compares_one_build_per_version_the_newest(tmp_path, monkeypatch):
    import argparse
    import os
    from pathlib import Path

    from txnstorm.host import sut
    from txnstorm.runner import cli
    from txnstorm.settings import Settings

    for entry, mtime in (("10.2.2-old", 100), ("10.2.2-new", 200), ("10.0.13-x", 150)):
        binary = tmp_path / "qemu" / entry / "bin" / "qemu-system-x86_64"
        binary.parent.mkdir(parents=True)
        binary.write_text("")
        os.utime(binary, (mtime, mtime))

    def fake_resolve(value):
        path = Path(value) if value else Path("/usr/bin/qemu-system-x86_64")
        version = path.parts[-3].split("-")[0] if "qemu" in path.parts[:-3] else "7.2.22"
        return sut.SystemUnderTest(path, path.with_name("qemu-img"), version)

    monkeypatch.setattr(sut, "resolve", fake_resolve)
    systems = cli._nightly_qemus(argparse.Namespace(qemu=[], no_built=False, settings=Settings(cache_dir=tmp_path)))
    assert [(s.version, s.qemu.parts[-3]) for s in systems] == [
        ("7.2.22", "usr"), ("10.2.2", "10.2.2-new"), ("10.0.13", "10.0.13-x")
    ]


def test_run_with_a_mistyped_test_is_one_line_before_anything_slow(tmp_path):
    import os

    proc = run_cli("run", "--test", "no_such_test", env=dict(os.environ, QEMU=str(tmp_path / "not-checked-yet")))
    assert proc.returncode == 2, proc
    assert proc.stderr == "txnstorm: error: TEST='no_such_test' names no test; scripts/txnstorm list shows every test\n"
    assert proc.stdout == ""


def test_the_end_of_a_run_says_what_its_exit_status_means(tmp_path, capsys):
    import json

    from txnstorm.runner import cli

    board = json.dumps({"seed": 9, "qemu_path": "/b/qemu-system-x86_64", "accel": "tcg"})
    tests = [
        {"id": f"{i}-tests/a.py:A.{name}", "name": f"tests/a.py:A.{name}", "status": status, "whiteboard": board}
        for i, (name, status) in enumerate([("test_x", "FAIL"), ("test_y", "WARN")], 1)
    ]
    (tmp_path / "results.json").write_text(json.dumps({"tests": tests}))
    assert cli._said_the_run(tmp_path, tmp_path / "report.html", 12.3) == 1
    said = capsys.readouterr().out
    assert "1 FAIL, 1 WARN in 12 s" in said
    assert "replay: make run TEST=tests/a.py:A.test_x SEED=9 QEMU=/b/qemu-system-x86_64 ACCEL=tcg" in said
    assert "note: under TCG (no KVM)" in said
    assert said.rstrip().endswith("exit 1: a finding about the QEMU under test: a test FAILed (an oracle violation, "
                                  "or QEMU crashed, hung, stalled a device or refused a command)")  # fmt: skip


def test_nightly_qemus_are_chosen_by_version_or_path(tmp_path, monkeypatch):
    import argparse
    from pathlib import Path

    import pytest

    from txnstorm.errors import UserError
    from txnstorm.host import sut
    from txnstorm.runner import cli
    from txnstorm.settings import Settings

    settings = Settings(cache_dir=tmp_path)
    binary = tmp_path / "qemu" / "10.2.2-x" / "bin" / "qemu-system-x86_64"
    binary.parent.mkdir(parents=True)
    binary.write_text("")

    def fake_resolve(value):
        path = Path(value) if value else Path("/usr/bin/qemu-system-x86_64")
        version = {"10.2.2-x": "10.2.2", "build": "11.0.50"}.get(path.parts[-3], "7.2.22")
        return sut.SystemUnderTest(path, path.with_name("qemu-img"), version)

    monkeypatch.setattr(sut, "resolve", fake_resolve)
    chosen = cli._nightly_qemus(argparse.Namespace(qemus="10.2.2 /home/me/build/x/qemu-system-x86_64", qemu=[],
                                                    settings=settings))  # fmt: skip
    assert [s.version for s in chosen] == ["10.2.2", "11.0.50"]
    with pytest.raises(UserError, match=r"NIGHTLY_QEMUS: no QEMU 9\.9 here \(have: 7\.2\.22, 10\.2\.2\)"):
        cli._nightly_qemus(argparse.Namespace(qemus="9.9", qemu=[], settings=settings))


def test_a_shard_that_selects_no_test_says_so_and_exits_0(tmp_path):
    """`make quick SHARD=40/40`: more shards than tests is no failure; nothing is built or booted."""
    proc = run_cli("run", "--tags=quick", "--shard=40/40", f"--results-dir={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == ["txnstorm: shard 40/40 selects no test (fewer tests than shards); "
                                                "nothing to run: exit 0"]  # fmt: skip
    assert proc.stderr == "" and not (tmp_path / "r").exists()


def test_auto_never_runs_more_tests_side_by_side_than_the_run_has(monkeypatch, capsys):
    from txnstorm.runner import cli, runs

    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    assert cli._side_by_side(None, 1) == 1
    said = capsys.readouterr().out
    assert "jobs: 1 test(s) side by side (JOBS=auto: one per core, 2 cores; 1 test(s) to run)" in said
    assert cli._side_by_side(None, 16) == runs.jobs_for(2)
    assert cli._side_by_side(3, 1) == 3, "JOBS=N is the user's"


def test_the_host_failing_mid_run_is_one_line_and_exit_3_not_a_traceback(monkeypatch, capsys):
    import errno

    from txnstorm.runner import cli

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device", "/work/results/job/x.qcow2")

    monkeypatch.setattr(cli, "sweep_stale", full)
    assert cli.main(["sweep"]) == 3
    said = capsys.readouterr().err
    assert said == "txnstorm: the host failed the run: No space left on device (/work/results/job/x.qcow2)\n"
