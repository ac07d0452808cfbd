"""The reliability harness's leak count must be able to fail."""

from pathlib import Path

import pytest

from txnstorm.runner import reliability


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    tmp, var_tmp = tmp_path / "tmp", tmp_path / "var-tmp"
    tmp.mkdir()
    var_tmp.mkdir()
    monkeypatch.setattr(reliability, "temp_roots", lambda: [tmp, var_tmp])
    monkeypatch.setattr(reliability, "our_processes", lambda: [])
    return tmp, var_tmp


def test_a_private_dir_left_in_any_temp_root_is_counted(roots: tuple[Path, Path]) -> None:
    before = reliability.leftovers()
    (roots[1] / "txnstorm-vm-abc").mkdir()
    (roots[0] / "disk0.qcow2").touch()
    new = reliability.new_since(before)
    assert new["temp_dirs"] == {str(roots[1] / "txnstorm-vm-abc")}
    assert new["temp_images"] == {str(roots[0] / "disk0.qcow2")}


def test_what_was_there_before_and_shared_caches_are_not_leaks(roots: tuple[Path, Path]) -> None:
    (roots[0] / "txnstorm-vm-older").mkdir()
    before = reliability.leftovers()
    (roots[1] / "txnstorm-build-cache").mkdir()
    assert not any(reliability.new_since(before).values())


def test_temp_roots_include_var_tmp_where_avocado_tests_put_sockets() -> None:
    assert Path("/var/tmp") in reliability.temp_roots()


def test_load_hogs_are_started_and_ended_by_their_pids() -> None:
    hogs = reliability.start_hogs(2)
    try:
        assert len({h.pid for h in hogs}) == 2 and all(h.poll() is None for h in hogs)
    finally:
        ended = reliability.end_hogs(hogs)
    assert sorted(ended) == sorted(h.pid for h in hogs)
    assert all(h.returncode is not None for h in hogs), "none left running"
    assert reliability.end_hogs(hogs) == [], "ending them twice ends nothing else"


def test_each_run_says_fail_error_and_warn_even_when_none() -> None:
    assert reliability.describe_run({"PASS": 13, "WARN": 3}, 581.6) == "FAIL 0, ERROR 0, WARN 3 (PASS 13) in 582 s"


def test_a_warn_names_its_known_issue():
    from txnstorm.runner.reliability import describe_run, warned_issue

    assert warned_issue({"failure": {"kind": "QEMU crashed", "known_issue": "KI-5"}}) == "KI-5"
    assert warned_issue({"known_issue": {"issue": "KI-1", "reproduced": True}}) == "KI-1"
    assert warned_issue({"known_issue": {"issue": "KI-7", "reproduced": False}}) == "KI-7 not seen"
    assert warned_issue({}) is None
    said = describe_run({"PASS": 14, "WARN": 2, "WARN KI-1": 1, "WARN KI-5": 1}, 300)
    assert said == "FAIL 0, ERROR 0, WARN 2 (PASS 14, WARN KI-1 1, WARN KI-5 1) in 300 s"
