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
