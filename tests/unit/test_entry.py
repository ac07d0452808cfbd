"""entry.run: every runner process reads its settings once and ends with the same statuses."""

import pytest

from txnstorm.errors import QemuDied, TxnstormError, UserError
from txnstorm.runner import entry
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
