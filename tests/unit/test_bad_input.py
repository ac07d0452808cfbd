"""Every documented bad input: one line on stderr, exit status 2, nothing left behind."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import GUEST_CACHE

REPO = Path(__file__).resolve().parents[2]
NOT_X86 = '#!/bin/sh\n[ "$1" = --version ] && echo "QEMU emulator version 9.0.0"; exit 0\n'


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "txnstorm.runner.cli", *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=120, check=False,
    )  # fmt: skip


def ours_in_tmp() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("txnstorm-*")}


def corrupt_cache(tmp: Path) -> dict[str, str]:
    from txnstorm.host import assets

    digest = assets.recipe_digest(assets.GUESTS_DIR / "tiny")
    entry = tmp / "guests" / f"tiny-{digest[:12]}"
    entry.mkdir(parents=True)
    (entry / "manifest.json").write_text("{truncated")
    return {"TXNSTORM_CACHE": str(tmp)}


def not_x86(tmp: Path) -> dict[str, str]:
    fake = tmp / "qemu-system-x86_64"
    fake.write_text(NOT_X86)
    fake.chmod(0o755)
    return {"QEMU": str(fake)}


def unreadable_results(tmp: Path) -> dict[str, str]:
    return {}


CASES = [
    ("missing QEMU binary", ["preflight"], lambda t: {"QEMU": str(t / "nope")}, "no such file"),
    ("QEMU dir without binary", ["preflight"], lambda t: {"QEMU": str(t)}, "directory without"),
    ("non-QEMU binary", ["preflight"], lambda t: {"QEMU": "/bin/true"}, "not a QEMU system emulator"),
    ("non-x86_64 QEMU", ["preflight"], not_x86, "does not emulate x86_64"),
    ("missing qemu-img", ["preflight"], lambda t: {"QEMU_IMG": str(t / "nope")}, "QEMU_IMG="),
    ("corrupt guest cache", ["guest", "--verify-only"], corrupt_cache, "corrupt"),
    ("bad accelerator", ["preflight"], lambda t: {"ACCEL": "hvf", "TXNSTORM_CACHE": str(GUEST_CACHE)}, None),
    ("unknown tag", ["tags", "quick,nosuchtag"], lambda t: {}, "unknown tag"),
    ("bad duration", ["nightly", "--duration", "10x"], lambda t: {}, "DURATION"),
    ("bad QMP answer window", ["preflight"], lambda t: {"TXNSTORM_QMP_ANSWER_S": "1"}, "TXNSTORM_QMP_ANSWER_S=1 "),
    ("bad shard", ["select", "--shard=5/4"], lambda t: {}, "--shard="),
    ("tags that select nothing", ["select", "--tags=-quick,-nightly,-known-issue"], lambda t: {}, "selects no test"),
    ("unreadable results dir", ["replay", "/nonexistent/results"], unreadable_results, "no results.json"),
    ("validate: no series", ["validate", "--series=", "--base=10.2.2"], lambda t: {}, "name the series"),
    ("validate: RUNS=0", ["validate", "--series=teeth", "--base=10.2.2", "--runs=0"], lambda t: {}, "RUNS=0"),
    ("validate: JUDGE not a validation", ["validate", "--judge=docs"], lambda t: {}, "not the results dir of a make"),
    ("validate: base not built", ["validate", "--series=teeth/transaction-without-drain/10.patch", "--base=1.2.3"],
     lambda t: {"TXNSTORM_CACHE": str(t)}, "BASE=1.2.3 is not built"),
    ("validate: empty series", ["validate", "--series=docs/findings/lib", "--base=10.2.2"],
     lambda t: {}, "no patches in it"),
    ("empty QEMU in the environment", ["run", "--tags=quick"], lambda t: {"QEMU": ""}, "QEMU= is empty; give QEMU="),
    ("empty ACCEL in the environment", ["preflight"], lambda t: {"ACCEL": ""}, "ACCEL= is empty"),
    ("iotests' QEMU_PROG against QEMU", ["preflight"], lambda t: {"QEMU": "/a", "QEMU_PROG": "/b"},
     "QEMU=/a and QEMU_PROG=/b disagree"),
    ("iotests' QEMU_IMG_PROG missing", ["preflight"], lambda t: {"QEMU_IMG_PROG": str(t / "nope")},
     "QEMU_IMG_PROG="),
    ("results dir that cannot be written", ["run", "--results-dir=LICENSE/results"], lambda t: {},
     "LICENSE/results cannot be written"),
]


@pytest.mark.parametrize(("what", "args", "setup", "says"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, what, args, setup, says):
    if what == "bad accelerator" and not Path("/usr/bin/qemu-system-x86_64").exists():
        pytest.skip("needs Debian's QEMU to get as far as the accelerator")
    before = ours_in_tmp()
    proc = cli(*args, env=setup(tmp_path))
    lines = proc.stderr.strip().splitlines()
    if what == "bad accelerator" and proc.returncode != 2:
        pytest.skip(f"no verified guest in this cache: {proc.stderr.strip()[:100]}")
    assert proc.returncode == 2, (what, proc.stdout, proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("txnstorm: error: ")
    if says:
        assert says in lines[0]
    assert ours_in_tmp() <= before, "left a private temp dir behind"


def test_validate_bad_input_leaves_no_results_dir(tmp_path):
    for args in (["--series=docs/findings/lib", "--base=10.2.2"], ["--series=LICENSE", "--base=10.2.2"]):
        proc = cli("validate", *args, f"--results-dir={tmp_path / 'results'}")
        assert proc.returncode == 2, proc.stderr
        assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir()), "left a results dir"
