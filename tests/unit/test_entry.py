"""entry.run: every runner process reads its settings once and ends with the same statuses."""

import signal
import subprocess
import sys

import pytest

from txnstorm import REPO
from txnstorm.errors import QemuDied, Terminated, TxnstormError, UserError
from txnstorm.runner import entry, runs
from txnstorm.settings import Settings


def test_the_body_gets_the_settings_of_the_environment_given():
    seen: list[Settings] = []
    assert entry.run(lambda s: seen.append(s) or 0, env={"ACCEL": "tcg", "TXNSTORM_CACHE": "/c"}) == 0
    assert (seen[0].accel, str(seen[0].cache_dir)) == ("tcg", "/c")


def test_an_empty_setting_is_bad_input_before_the_body_runs(capsys):
    ran: list[bool] = []
    assert entry.run(lambda s: ran.append(True) or 0, prog="make bench", env={"QEMU": ""}) == 2
    assert not ran
    assert capsys.readouterr().err.startswith("make bench: error: QEMU= is empty")


def _raises(exc: BaseException):
    def body(_: Settings) -> int:
        raise exc
    return body


@pytest.mark.parametrize(("exc", "status", "said"), [
    (UserError("no guest; run make guest"), 2, "make deaths: error: no guest; run make guest"),
    (KeyboardInterrupt(), 130, "make deaths: interrupted"),
    (OSError(28, "No space left on device", "/r"), 3, "make deaths: the host failed the run: No space left"),
    (TxnstormError("guest build broke"), 3, "make deaths: TxnstormError: guest build broke"),
])  # fmt: skip
def test_each_end_has_its_status_and_one_line(capsys, exc, status, said):
    assert entry.run(_raises(exc), prog="make deaths", env={}) == status
    assert capsys.readouterr().err.startswith(said)


def test_a_qemu_failure_outside_a_test_is_a_finding(capsys):
    failure = QemuDied("killed by SIGSEGV", stage="while its capabilities were probed")
    assert entry.run(_raises(failure), prog="txnstorm", env={}) == 1
    assert capsys.readouterr().err == "txnstorm: QEMU crashed while its capabilities were probed: killed by SIGSEGV\n"


BODY = """
import sys, time
from pathlib import Path
from txnstorm.runner import entry

def body(settings):
    try:
        print("started", flush=True)
        time.sleep(60)
        return 0
    finally:
        Path(sys.argv[1]).write_text("cleaned up")

sys.exit(entry.run(body, prog="make bench", env={}))
"""


def test_sigterm_is_cleaned_up_as_ctrl_c_and_ends_with_143(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", BODY, str(tmp_path / "mark")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert (proc.returncode, err, (tmp_path / "mark").read_text()) == (143, "make bench: terminated\n", "cleaned up")


TRAPS_SIGINT = ("import signal, sys, time; signal.signal(signal.SIGINT, lambda *_: sys.exit(7)); "
                "print(1, flush=True); time.sleep(60)")


@pytest.mark.parametrize(("stop", "status"), [(Terminated(), 7), (KeyboardInterrupt(), -signal.SIGTERM)])
def test_avocado_is_told_of_a_sigterm_it_did_not_get(stop, status, monkeypatch):
    """Ctrl-C reached Avocado too (the terminal's process group): it is not told twice; here, a job
    that ignores it is terminated once its wait is over."""
    job = subprocess.Popen([sys.executable, "-c", TRAPS_SIGINT], stdout=subprocess.PIPE, text=True)
    assert job.stdout is not None and job.stdout.readline() == "1\n"
    real_wait = job.wait
    monkeypatch.setattr(job, "wait", lambda timeout=None: real_wait(timeout=min(timeout or 30, 2)))
    runs.let_avocado_end(job, stop)
    assert job.returncode == status
