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
    from txnstorm.host import accel

    try:
        accel.choose("hvf", None, None)  # type: ignore[arg-type]
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

    monkeypatch.setenv("TXNSTORM_CACHE", str(tmp_path))
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
    systems = cli._nightly_qemus(argparse.Namespace(qemu=[], no_built=False))
    assert [(s.version, s.qemu.parts[-3]) for s in systems] == [
        ("7.2.22", "usr"), ("10.2.2", "10.2.2-new"), ("10.0.13", "10.0.13-x")
    ]
