import shutil

import pytest

from txnstorm.errors import UserError
from txnstorm.host.sut import resolve


def test_missing_binary(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        resolve(str(tmp_path / "nope"))


def test_not_executable(tmp_path):
    f = tmp_path / "qemu"
    f.write_text("x")
    with pytest.raises(UserError, match="not executable"):
        resolve(str(f))


def test_not_qemu(tmp_path):
    with pytest.raises(UserError, match="not a QEMU system emulator"):
        resolve(shutil.which("true"))


def test_build_dir_without_binary(tmp_path):
    with pytest.raises(UserError, match="directory without qemu-system-x86_64"):
        resolve(str(tmp_path))


def test_non_x86_binary_is_refused(tmp_path, fake_qemu):
    script = '#!/bin/sh\n[ "$1" = --version ] && echo "QEMU emulator version 9.0.0"; exit 0\n'
    with pytest.raises(UserError, match="does not emulate x86_64"):
        resolve(str(fake_qemu(tmp_path, script)))


def test_build_dir_finds_its_own_tools(tmp_path, qemu_img, fake_qemu):
    fake_qemu(tmp_path)
    (tmp_path / "qemu-img").symlink_to(qemu_img.binary)
    system = resolve(str(tmp_path))
    assert system.version == "9.9.9"
    assert system.qemu == (tmp_path / "qemu-system-x86_64").resolve()
    assert system.qemu_img == tmp_path / "qemu-img"
    assert system.version_tuple == (9, 9, 9)


def test_qemu_img_that_is_not_qemu_img(tmp_path, fake_qemu):
    fake_qemu(tmp_path)
    with pytest.raises(UserError, match="QEMU_IMG=.* is not qemu-img"):
        resolve(str(tmp_path), shutil.which("true"))


def test_default_is_debian_qemu_on_path(qemu_img):
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed")
    assert resolve("", "").version_tuple >= (7, 2)


def test_qemus_own_functional_test_names_are_aliases(tmp_path, monkeypatch, fake_qemu):
    from txnstorm.host import sut
    from txnstorm.settings import Settings, named

    qemu = fake_qemu(tmp_path)
    env = {"QEMU_TEST_QEMU_BINARY": str(qemu)}
    assert named(env, "QEMU") == ("QEMU_TEST_QEMU_BINARY", str(qemu))
    assert Settings.from_env(env).qemu_var == "QEMU_TEST_QEMU_BINARY"
    assert named({**env, "QEMU": str(qemu)}, "QEMU") == ("QEMU", str(qemu)), "the same value twice is fine"
    with pytest.raises(UserError, match="QEMU=/elsewhere/qemu-system-x86_64 and QEMU_TEST_QEMU_BINARY=.* disagree"):
        Settings.from_env({**env, "QEMU": "/elsewhere/qemu-system-x86_64"})
    with pytest.raises(UserError, match="QEMU_TEST_QEMU_IMG=.*nope: no such file"):
        sut.check_named(Settings.from_env({**env, "QEMU_TEST_QEMU_IMG": str(tmp_path / "nope")}))


def test_the_qmp_answer_window_is_a_setting_with_a_default_and_bounds():
    from txnstorm.settings import QMP_ANSWER_S, Settings

    assert Settings.from_env({}).qmp_answer_s == QMP_ANSWER_S == 60.0
    assert Settings.from_env({"TXNSTORM_QMP_ANSWER_S": "120"}).qmp_answer_s == 120.0
    for wrong in ("1", "abc", "-5", "nan"):
        with pytest.raises(UserError, match=f"TXNSTORM_QMP_ANSWER_S={wrong} is not a number of seconds"):
            Settings.from_env({"TXNSTORM_QMP_ANSWER_S": wrong})
