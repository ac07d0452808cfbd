"""ACCEL=auto keeps a KVM probe's verdict only when it is final, says when it
was taken, and forgets it on request."""

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from txnstorm.vm import accel
from txnstorm.vm.accel import ProbeFailure


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.setattr(accel, "kvm_device_problem", lambda: None)
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text("")
    probes: list[str] = []
    state = SimpleNamespace(sut=SimpleNamespace(qemu=qemu), image=SimpleNamespace(digest="d" * 64), probes=probes,
                            cache=tmp_path / "cache")  # fmt: skip
    state.answer = None

    def probe(sut, image, logdir, keeping=None, trace=()):
        probes.append(str(logdir))
        state.watched = (keeping, trace)
        return state.answer

    monkeypatch.setattr(accel, "probe_kvm", probe)
    return state


def choose(host: SimpleNamespace, reprobe: bool = False) -> accel.AccelChoice:
    return accel.choose("auto", host.sut, host.image, say=lambda _: None, reprobe=reprobe, cache=host.cache)


def test_a_probe_that_timed_out_is_kept_for_one_run_only(host, monkeypatch):
    host.answer = ProbeFailure("guest SSH not ready within 20 s", final=False)
    first = choose(host)
    assert first.accel == "tcg" and "a timeout, kept only until" in first.reason
    choose(host)
    assert len(host.probes) == 1, "the tests of one run reuse it"
    later = time.time() + accel.TIMEOUT_KEPT_S + 1
    monkeypatch.setattr(accel.time, "time", lambda: later)
    choose(host)
    assert len(host.probes) == 2, "a timeout is probed again once it expired"


def test_a_final_verdict_is_kept_with_the_time_it_was_taken(host):
    host.answer = ProbeFailure("QEMU killed by SIGABRT: kvm_buf_set_msrs", final=True)
    choose(host)
    again = choose(host)
    assert len(host.probes) == 1
    assert again.accel == "tcg"
    assert "probed 2" in again.reason and "UTC" in again.reason and "--reprobe" in again.reason


def test_reprobe_forgets_the_kept_verdict(host):
    host.answer = ProbeFailure("QEMU killed by SIGABRT", final=True)
    choose(host)
    host.answer = None  # KVM works now (e.g. a fixed host kernel module)
    assert choose(host, reprobe=True).accel == "kvm"
    assert len(host.probes) == 2
    assert choose(host).accel == "kvm"


def test_the_reason_names_no_file_of_the_deleted_probe_dir(tmp_path, monkeypatch):
    from txnstorm.errors import DeadlineExceeded, QemuDied
    from txnstorm.vm import boot

    def failing(error):
        def booted(*args, **kwargs):
            raise error

        return booted

    died = QemuDied("QEMU killed by SIGABRT: kvm.c: Assertion failed (backtrace: qemu-crash-backtrace.txt)")
    monkeypatch.setattr(boot, "booted", failing(died))
    image = SimpleNamespace(boot_files=lambda: None)
    failure = accel.probe_kvm(SimpleNamespace(qemu=tmp_path / "qemu"), image, tmp_path)
    assert failure == ProbeFailure("QEMU killed by SIGABRT: kvm.c: Assertion failed", final=True)
    hang = DeadlineExceeded(f"guest console never showed 'ready' within 20 s (console log: {tmp_path}/console.log)")
    hang.add_detail("QEMU main thread in its main loop (idle); backtrace: qemu-backtrace.txt")
    monkeypatch.setattr(boot, "booted", failing(hang))
    failure = accel.probe_kvm(SimpleNamespace(qemu=tmp_path / "qemu"), image, tmp_path)
    assert failure == ProbeFailure("guest console never showed 'ready' within 20 s", final=False)


def test_the_kvm_probe_is_watched_as_the_user_asked(host):
    """TXNSTORM_QMP_ANSWER_S, TXNSTORM_KEEP_CORES and TXNSTORM_QEMU_TRACE reach the probe's QEMU too."""
    from txnstorm.vm.qemu_process import Keeping

    watched = Keeping(cores=True, qmp_answer_s=120.0)
    accel.choose("auto", host.sut, host.image, say=lambda _: None, cache=host.cache, keeping=watched,
                 trace=("virtio_notify*",))  # fmt: skip
    assert host.watched == (watched, ("virtio_notify*",))
