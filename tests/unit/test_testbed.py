"""One test bed (issue #37): every entry point that boots or probes the QEMU under test sets it up
with ``vm.testbed.set_up``, so every setting (ACCEL, trace events, kept cores, the QMP window,
the cache) reaches every machine, the KVM probe's and the schema probe's QEMU included."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from txnstorm.errors import QemuDied
from txnstorm.host import assets, sut
from txnstorm.settings import Settings
from txnstorm.vm import accel, caps, testbed
from txnstorm.vm.accel import AccelChoice
from txnstorm.vm.qemu_process import Keeping

REPO = Path(__file__).resolve().parents[2]
SETTINGS = Settings(qemu="/q/qemu-system-x86_64", accel="tcg", cache_dir=Path("/c"), qemu_trace=("virtio_notify*",),
                    keep_cores=True, qmp_answer_s=120.0)  # fmt: skip


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """Each step of the sequence, faked, with what it was given."""
    done: list[tuple[str, dict]] = []
    system = sut.SystemUnderTest(Path("/q/qemu-system-x86_64"), Path("/q/qemu-img"), "10.2.2")
    guest = SimpleNamespace(directory=Path("/c/guests/tiny"), build_info={}, boot_files=lambda: "boot files")

    def resolve_settings(settings):
        done.append(("sut", {"qemu": settings.qemu}))
        return system

    def ensure_guest(recipe, allow_build, say, cache):
        done.append(("guest", {"recipe": recipe, "allow_build": allow_build, "cache": cache}))
        return guest

    def choose(requested, system, image, say, reprobe, *, cache, keeping, trace):  # noqa: PLR0913 - accel.choose's
        done.append(("accel", {"requested": requested, "reprobe": reprobe, "cache": cache, "keeping": keeping,
                               "trace": trace}))  # fmt: skip
        return AccelChoice(requested, "requested")

    def probe(system, *, cache, keeping):
        done.append(("caps", {"cache": cache, "keeping": keeping}))
        return caps.Capabilities("10.2.2", frozenset(), frozenset())

    monkeypatch.setattr(sut, "resolve_settings", resolve_settings)
    monkeypatch.setattr(assets, "ensure_guest", ensure_guest)
    monkeypatch.setattr(accel, "choose", choose)
    monkeypatch.setattr(caps, "probe", probe)
    return done


def test_every_setting_reaches_the_platform_and_both_probes(steps):
    said: list[str] = []
    bed = testbed.set_up(SETTINGS, say=said.append)
    assert [name for name, _ in steps] == ["sut", "guest", "accel", "caps"], "a wrong QEMU costs no guest build"
    watched = Keeping(cores=True, qmp_answer_s=120.0)
    assert steps[2][1] == {"requested": "tcg", "reprobe": False, "cache": Path("/c"), "keeping": watched,
                           "trace": ("virtio_notify*",)}  # fmt: skip
    assert steps[3][1] == {"cache": Path("/c"), "keeping": watched}
    assert bed.platform is not None and bed.accel is not None and bed.caps is not None
    assert (bed.platform.accel, bed.platform.trace, bed.platform.keep_cores, bed.platform.qmp_answer_s) == (
        "tcg", ("virtio_notify*",), True, 120.0)  # fmt: skip
    assert bed.keeping == watched
    assert [line.split(":")[0] for line in said] == ["system under test", "guest", "accel", "capabilities"]
    other = bed.platform_for(SimpleNamespace(boot_files=lambda: "debian boot files"))
    assert (other.boot, other.accel, other.trace, other.qmp_answer_s) == ("debian boot files", "tcg",
                                                                         ("virtio_notify*",), 120.0)  # fmt: skip


def test_what_an_entry_point_does_not_need_is_not_set_up(steps):
    bed = testbed.set_up(SETTINGS, needs_guest=False, needs_caps=False)
    assert [name for name, _ in steps] == ["sut"]
    assert bed.guest is bed.accel is bed.platform is bed.caps is None
    testbed.set_up(SETTINGS, needs_caps=False, allow_build=True, recipe="debian-bench", reprobe=True)
    assert steps[2] == ("guest", {"recipe": "debian-bench", "allow_build": True, "cache": Path("/c")})
    assert steps[3][1]["reprobe"] and [name for name, _ in steps] == ["sut", "sut", "guest", "accel"]


def test_a_qemu_that_cannot_answer_its_schema_stays_a_finding(steps, monkeypatch):
    def dies(system, *, cache, keeping):
        raise QemuDied("QEMU killed by SIGSEGV", stage=caps.SchemaProbe.STARTING)

    monkeypatch.setattr(caps, "probe", dies)
    with pytest.raises(QemuDied, match="SIGSEGV"):
        testbed.set_up(SETTINGS)
    bed = testbed.set_up(SETTINGS, needs_caps=False)  # the harness: the QEMU known before its schema probe
    with pytest.raises(QemuDied):
        bed.with_caps()
    assert bed.sut.version == "10.2.2"


SEQUENCE = re.compile(r"\b(?:accel\.choose|caps\.probe|assets\.ensure_guest|sut\.resolve_settings)\(")


def _sources() -> list[Path]:
    return [*sorted((REPO / "txnstorm").rglob("*.py")), REPO / "scripts" / "storm-stop-repro"]


def test_the_start_up_sequence_is_written_once():
    copies = [f"{path.relative_to(REPO)}: {m.group(0)}" for path in _sources() if path.name != "testbed.py"
              for m in SEQUENCE.finditer(path.read_text())]  # fmt: skip
    assert not copies, "the start-up sequence outside vm/testbed.py:\n" + "\n".join(copies)
