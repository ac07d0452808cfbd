"""QEMU's death is the verdict, whichever channel notices it first (issue #39): the real QEMU
behind ``make deaths``' wrapper, killed at a stage of a real test, driven by the test's own
progress.  The whole matrix (every stage, SIGABRT and SIGSTOP, the guest's QEMU and the storage
daemon) is ``make deaths``; here the cases a bisection meets first: a QEMU that aborts while
the guest boots, and one whose death the guest's SSH meets first as the storm stops.

Real QEMU, real guest (built if missing), ~10 s a case."""

import re
import shutil
from pathlib import Path

import pytest

from txnstorm.host import assets, sut
from txnstorm.runner import deaths

pytestmark = pytest.mark.skipif(not (deaths.DEBIAN / deaths.VM).exists(), reason="needs Debian's QEMU (make setup)")


@pytest.fixture
def cache(tmp_path: Path, guest_cache: Path) -> Path:
    """A cache of the case's own beside the caller's guest (built there if missing)."""
    assets.ensure_guest(allow_build=True, say=lambda _: None, cache=guest_cache)
    return deaths.private_cache(tmp_path / "cache", guest_cache)


def stage(name: str) -> deaths.Stage:
    return next(s for s in deaths.VM_STAGES if s.name == name)


@pytest.mark.long(10)
@pytest.mark.parametrize(("where", "said"), [
    ("cold boot", r"QEMU crashed while the guest booted: QEMU killed by SIGABRT"),
    # the stage is the step where the suite met the dead QEMU: the stop's, or the overlap proof it makes first
    ("storm stops", r"QEMU crashed at '(storm stopping|round \d+: overlap proven)': QEMU killed by SIGABRT"),
])  # fmt: skip
def test_an_abort_is_fail_naming_its_stage(tmp_path, cache, where, said):
    case = deaths.Case(deaths.VM, deaths.VM_TEST, stage(where), "ABRT")
    system = sut.resolve(None, None)  # Debian's
    outcome = deaths.run_case(case, deaths.wrapper_dir(tmp_path / "bin", system), tmp_path / "results", cache)
    assert outcome.injected, f"the stage never came: {outcome}"
    assert outcome.status == "FAIL" and re.match(said, outcome.reason), outcome
    assert outcome.ok
    shutil.rmtree(tmp_path / "results", ignore_errors=True)  # kept (in pytest's tmp) only when it fails
