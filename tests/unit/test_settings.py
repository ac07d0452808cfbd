"""One declaration per setting (txnstorm/settings.py's SETTINGS): make help's list, docs/running.md's
table and the Makefile's variables follow it; names it does not know, settings the targets do not
read and empty values are bad input."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from txnstorm.errors import UserError
from txnstorm.runner import inputs
from txnstorm.settings import BY_NAME, SETTINGS, Settings, closest, command_line_problems, doc_table, help_lines

REPO = Path(__file__).resolve().parents[2]
MAKEFILE_OWN = {"VENV", "PY", "AVOCADO", "RESULTS", "CURDIR", "MAKE", "GIVEN", "MAKECMDGOALS"}


def test_make_help_lists_every_setting_from_the_declaration():
    said = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.splitlines()  # fmt: skip
    first = said.index(help_lines()[0])
    assert said[first : first + len(SETTINGS)] == help_lines()


def test_the_docs_table_is_the_declarations():
    page = (REPO / "docs" / "running.md").read_text()
    start = page.index("<!-- settings: generated")
    table = page[page.index("\n", start) + 1 : page.index("<!-- end of settings -->")]
    assert table == doc_table(), "run: python3 -m txnstorm.settings --doc, into docs/running.md"


def test_every_variable_the_makefile_reads_is_declared():
    makefile = (REPO / "Makefile").read_text()
    used = set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)", makefile))
    assert "QEMU_SRC" in used and "RUNS" in used
    assert used - MAKEFILE_OWN - set(BY_NAME) == set()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    for setting in SETTINGS:
        assert set(setting.targets) <= targets, (setting.name, set(setting.targets) - targets)


@pytest.mark.parametrize(("typed", "meant"), [
    ("QEMU_BIN", "QEMU"), ("QEMU_IMAGE", "QEMU_IMG"), ("qemu", "QEMU"), ("SEEED", "SEED"),
    ("TXNSTORM_BOTT", "TXNSTORM_BOOT"), ("NIGHTLY_QEMU", "NIGHTLY_QEMUS"), ("FOO", None),
])  # fmt: skip
def test_a_mistyped_name_gets_the_closest(typed, meant):
    assert closest(typed) == meant


def test_command_line_assignments_are_checked_against_the_targets():
    said = [str(e) for e in command_line_problems({"QEMU_BIN": "/x", "RUNS": "5", "QEMU": "", "TAGS": ""}, ["quick"])]
    assert said == [
        "QEMU_BIN=/x: unknown setting; did you mean QEMU?",
        "RUNS=5: make quick does not read it (read by make validate, reliability)",
        "QEMU= is empty; give QEMU=path (qemu-system-x86_64 or a QEMU build dir) or leave it out for the default "
        "(Debian's qemu-system-x86_64)",
    ], "TAGS= (every test) is a choice"
    assert command_line_problems({"RUNS": "5", "QEMU": "/x"}, ["inputs"]) == [], "make inputs reads every setting"
    assert command_line_problems({"UNIT_JOBS": "2"}, ["all"]) == [], "make (all) is make check"


def test_iotests_names_are_aliases_checked_against_each_other(tmp_path):
    assert Settings.from_env({"QEMU_PROG": "/q", "QEMU_IMG_PROG": "/i"}).qemu_var == "QEMU_PROG"
    assert Settings.from_env({"QEMU_PROG": "/q", "QEMU": "/q"}).qemu == "/q"
    with pytest.raises(UserError, match="QEMU=/a and QEMU_PROG=/b disagree"):
        Settings.from_env({"QEMU": "/a", "QEMU_PROG": "/b"})
    with pytest.raises(UserError, match="QEMU_TEST_QEMU_IMG=/a and QEMU_IMG_PROG=/b disagree"):
        Settings.from_env({"QEMU_TEST_QEMU_IMG": "/a", "QEMU_IMG_PROG": "/b"})


@pytest.mark.parametrize("name", ["QEMU", "QEMU_PROG", "QEMU_IMG", "ACCEL", "TXNSTORM_BOOT"])
def test_an_empty_setting_in_the_environment_is_an_error_not_the_default(name):
    with pytest.raises(UserError, match=f"^{name}= is empty; give {name}="):
        Settings.from_env({name: ""})


def test_a_full_disk_is_bad_input_before_the_run(tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(inputs.shutil, "disk_usage", lambda p: real(p)._replace(free=100 * 2**20))
    said = inputs.problems({"TXNSTORM_CACHE": str(tmp_path / "c")})
    assert said and all("on a disk with 0.1 GiB free, a run needs 2 GiB" in s for s in said), said


def test_a_results_dir_that_cannot_be_written_is_bad_input(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"results dir .*/file/results cannot be written \(.*/file is not a dir"):
        inputs.host_room(tmp_path / "file" / "results", "results dir", "fix it")


# Each process reads the settings once and hands the Settings (or its cache dir) down (issue #37):
# {file: its calls of Settings.from_env}.  Every runner process (scripts/txnstorm, bench, reliability,
# deaths, storm-stop-repro) through ``entry.run``; a scenario test's process (Avocado's) in its setUp;
# ``make inputs`` checks the make variables it was given.
ENTRY_POINTS = {"txnstorm/runner/entry.py": 1, "txnstorm/scenario/harness.py": 1, "txnstorm/runner/inputs.py": 1}
RUNNER_PROCESSES = ("txnstorm/runner/cli.py", "txnstorm/runner/bench.py", "txnstorm/runner/reliability.py",
                    "txnstorm/runner/deaths.py", "scripts/storm-stop-repro")  # fmt: skip


def test_every_runner_process_starts_through_entry_run():
    assert [name for name in RUNNER_PROCESSES if "entry.run(" not in (REPO / name).read_text()] == []


def test_settings_are_read_only_at_the_entry_points():
    calls, below = {}, []
    for path in [*sorted((REPO / "txnstorm").rglob("*.py")), REPO / "scripts" / "storm-stop-repro"]:
        text, name = path.read_text(), str(path.relative_to(REPO))
        if name != "txnstorm/settings.py" and (n := len(re.findall(r"Settings\.from_env\(", text))):
            calls[name] = n
        below += [name] if re.search(r"\bcache_(?:dir|root)\(\)", text) else []
    assert calls == ENTRY_POINTS
    assert not below, f"the cache dir is read from the environment below the entry points: {below}"


def test_a_value_a_command_gives_is_named_by_it():
    env = Settings.from_env({"QEMU": "/env/qemu", "QEMU_IMG": "/env/qemu-img"})
    given = env.given(qemu="/p/qemu", accel="tcg", by="-p qemu")
    assert (given.qemu, given.qemu_var, given.qemu_img, given.qemu_img_var, given.accel) == (
        "/p/qemu", "-p qemu", "/env/qemu-img", "QEMU_IMG", "tcg")
    assert env.given(qemu="/env/qemu", by="-p qemu").qemu_var == "QEMU"  # the same value: the user's variable
    assert env.given(qemu_img="/p/img", by="-p qemu").qemu_img_var == "-p qemu_img"
    assert env.given(by="--qemu") == env
