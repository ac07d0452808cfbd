"""make teeth's bookkeeping (the builds and runs themselves need QEMU sources: see README)."""

import subprocess

import pytest

from txnstorm.errors import UserError
from txnstorm.runner import teeth


def test_the_version_family_follows_the_drain_mechanism():
    assert [teeth.family(v) for v in ("7.2.22", "10.0.13", "10.2.2", "11.1.3")] == ["7.2", "10", "10", "11"]


def test_every_fault_in_the_repo_names_its_class_and_has_a_patch():
    faults = teeth.load_faults()
    assert faults
    for fault in faults:
        assert fault.bug_class.startswith("Class "), fault.name
        assert fault.patches, f"{fault.name}: no patch"


def test_a_fault_without_readme_is_named(tmp_path):
    (tmp_path / "nameless").mkdir()
    with pytest.raises(UserError, match="no README naming the bug class"):
        teeth.load_faults(tmp_path)


def fake_tree(root):
    tree = root / "src" / "qemu-10.2.2"
    (tree / "nbd").mkdir(parents=True)
    (tree / "VERSION").write_text("10.2.2\n")
    (tree / "nbd" / "server.c").write_text("int drained(void)\n{\n    return 1;\n}\n")
    return tree


def test_a_patch_applies_to_a_copy_and_is_reused(tmp_path):
    cache = tmp_path / "cache"
    tree = fake_tree(tmp_path)
    patch = tmp_path / "10.patch"
    patch.write_text("--- a/nbd/server.c\n+++ b/nbd/server.c\n@@ -1,4 +1,4 @@\n int drained(void)\n {\n"
                     "-    return 1;\n+    return 0; /* fault */\n }\n")  # fmt: skip
    fault = teeth.Fault("f", "Class 2", {"10": patch})
    copy = teeth.patched_tree(tree, fault, "10.2.2", cache)
    assert "fault" in (copy / "nbd" / "server.c").read_text()
    assert "fault" not in (tree / "nbd" / "server.c").read_text()  # the cached source stays stock
    mtime = (copy / "nbd" / "server.c").stat().st_mtime_ns
    assert teeth.patched_tree(tree, fault, "10.2.2", cache) == copy  # reused: build-qemu's cache hits
    assert (copy / "nbd" / "server.c").stat().st_mtime_ns == mtime
    assert not list(copy.glob(".txnstorm*"))  # the stamp lives beside the tree, not in it


def test_a_patch_that_does_not_apply_or_is_missing_is_said(tmp_path):
    cache = tmp_path / "cache"
    tree = fake_tree(tmp_path)
    bad = tmp_path / "10.patch"
    bad.write_text("--- a/nbd/server.c\n+++ b/nbd/server.c\n@@ -1,1 +1,1 @@\n-nothing like this\n+x\n")
    said = teeth.patched_tree(tree, teeth.Fault("f", "Class 2", {"10": bad}), "10.2.2", cache)
    assert isinstance(said, str) and said.startswith("10.patch does not apply")
    said = teeth.patched_tree(tree, teeth.Fault("f", "Class 2", {"10": bad}), "7.2.22", cache)
    assert said == "no patch for the 7.2 family (10 exist)"


def test_caught_missed_and_stock_rows():
    failed = {"tests/n.py:N.test_stamps": ("FAIL", "transaction did not capture one point in time")}
    passed = {"tests/n.py:N.test_stamps": ("PASS", "")}
    assert teeth.judge("nbd", "10.2.2", teeth.TierResult(failed, 60)).outcome == "caught"
    assert teeth.judge("nbd", "10.2.2", teeth.TierResult(passed, 60)).outcome == "missed"
    assert teeth.judge("stock", "10.2.2", teeth.TierResult(passed, 60)).outcome == "clean"
    assert teeth.judge("stock", "10.2.2", teeth.TierResult(failed, 60)).outcome == "NOT CLEAN"
    assert teeth.judge("nbd", "10.2.2", teeth.TierResult({})).outcome == "no result"


def test_a_real_bug_the_tier_misses_is_said_not_counted():
    """Issue #35's corpus: what the tier catches of real upstream bugs is measured; a miss is a row."""
    failed = {"tests/n.py:N.test_stamps": ("FAIL", "device stalled")}
    passed = {"tests/n.py:N.test_stamps": ("PASS", "")}
    missed = teeth.judge("upstream-x", "10.2.2", teeth.TierResult(passed, 60), real_bug=True)
    assert missed.outcome == "missed (real bug)"
    assert teeth.judge("upstream-x", "10.2.2", teeth.TierResult(failed, 60), real_bug=True).outcome == "caught"
    corpus = [f for f in teeth.load_faults() if f.name.startswith("upstream-")]
    assert corpus and all(f.real_bug for f in corpus)
    assert not any(f.real_bug for f in teeth.load_faults() if not f.name.startswith("upstream-"))


def test_each_row_says_how_long_after_the_first_test_started_the_first_fail_came():
    """make teeth's '1st FAIL' column (issue #23: the first verdict within a minute)."""
    tests = [
        {"name": "a", "status": "PASS", "actual_time_start": 1000.0, "actual_time_end": 1030.0},
        {"name": "b", "status": "FAIL", "actual_time_start": 1030.0, "actual_time_end": 1072.5},
        {"name": "c", "status": "ERROR", "actual_time_start": 1072.5, "actual_time_end": 1090.0},
    ]
    assert teeth.first_fail_after(tests) == 72.5
    assert teeth.first_fail_after([{**t, "status": "PASS"} for t in tests]) is None
    row = teeth.judge("nbd", "10.2.2", teeth.TierResult({"b": ("FAIL", "x")}, 90, "tcg", 72.5))
    assert row.first_fail_s == 72.5 and "    72 s  b: FAIL x" in row.line()
    missed = teeth.judge("nbd", "10.2.2", teeth.TierResult({"a": ("PASS", "")}, 9))
    assert "       -  every test passed" in missed.line()


def test_a_tier_side_by_side_takes_its_wall_time_not_the_tests_sum():
    tests = [{"actual_time_start": 100.0, "actual_time_end": 160.0},
             {"actual_time_start": 101.0, "actual_time_end": 150.5}]  # fmt: skip
    assert teeth.wall_seconds(tests, job_time=109.5) == 60.0  # two side by side: 60 s of wall, 109.5 s summed
    assert teeth.wall_seconds([{}], job_time=42.0) == 42.0  # an older results.json: its own figure


def test_a_miss_where_the_fault_needs_kvm_is_said_not_counted():
    passed = {"tests/m.py:M.test_race": ("PASS", "")}
    on_tcg, on_kvm = teeth.TierResult(passed, 60, "tcg"), teeth.TierResult(passed, 60, "kvm")
    assert teeth.judge("vblk", "7.2.22", on_tcg, needs_kvm=True).outcome == "missed: needs KVM (tcg)"
    assert teeth.judge("vblk", "7.2.22", on_kvm, needs_kvm=True).outcome == "missed"
    # Since the race test's guest polls its completions, 7.2's class 1 is caught under TCG: no
    # fault needs KVM any more, so a miss there counts (docs/teeth.md, 2026-12-03).
    assert all(not f.needs_kvm for f in teeth.load_faults())


def test_unknown_versions_are_bad_input_before_anything_builds(tmp_path):
    with pytest.raises(UserError, match="no QEMU source for 9.9.9"):
        teeth.teeth(["quick"], tmp_path / "results", ["9.9.9"], cache=tmp_path)


def test_make_teeth_with_a_bad_tier_is_one_line_and_exit_2():
    run = subprocess.run(["make", "-s", "teeth", "TEETH_TAGS=nosuch"], capture_output=True, text=True, check=False,
                         cwd=teeth.REPO, timeout=120)  # fmt: skip
    assert run.returncode == 2
    assert "TEETH_TAGS: unknown tag 'nosuch'" in run.stderr


def test_the_stock_build_is_never_a_fault_build(tmp_path):
    import json

    patched = tmp_path / "teeth" / "src" / "f-7.2.22"
    stock_src = tmp_path / "teeth" / "qemu" / "src" / "1_7.2" / "qemu-7.2"
    for tree in (patched, stock_src):
        tree.mkdir(parents=True)
        (tree / "VERSION").write_text("7.2.22\n")
    # the fault build sorts first ("7.2.22-..." after "7.2+dfsg-..." only by luck of the characters)
    for entry, source in (("0-fault", patched), ("1-stock", stock_src)):
        (tmp_path / "teeth" / "qemu" / entry).mkdir(parents=True)
        (tmp_path / "teeth" / "qemu" / entry / "manifest.json").write_text(json.dumps({"source": str(source)}))
    stock = tmp_path / "teeth" / "qemu" / "1-stock" / "bin" / "qemu-system-x86_64"
    assert teeth.stock_build("7.2.22", tmp_path) == stock


def test_the_tier_runs_in_make_quicks_order(tmp_path, monkeypatch):
    """The 1st FAIL column is what FAILFAST=1 waits for only if teeth runs the tier in the order
    make quick does (what caught soonest first), not in file order."""
    from txnstorm.runner import runs, teeth

    in_file_order = sorted(["tests/a.py:A.test_a", *runs.CATCHES_FIRST, "tests/z.py:Z.test_z"])
    monkeypatch.setattr(runs, "avocado_list", lambda avocado, filters, refs, cwd: list(in_file_order))
    asked = {}

    def job(*args, refs=None, **kwargs):
        asked["refs"] = refs
        return tmp_path / "none"

    monkeypatch.setattr(runs, "run_avocado_job", job)
    teeth.run_tier(tmp_path / "qemu-system-x86_64", ["quick"], tmp_path / "results")
    assert asked["refs"][: len(runs.CATCHES_FIRST)] == list(runs.CATCHES_FIRST)
    assert sorted(asked["refs"]) == in_file_order, "every test, once"


def test_teeth_faults_choose_classes_real_bugs_or_folders():
    faults = teeth.load_faults()
    classes = [f.name for f in teeth.chosen_faults(["classes"], faults)]
    real = [f.name for f in teeth.chosen_faults(["real"], faults)]
    assert sorted(classes) == ["nbd-export-ignores-drain", "transaction-without-drain", "virtio-blk-ignores-drain"]
    assert real and all(name.startswith("upstream-") for name in real)
    assert [f.name for f in teeth.chosen_faults(["classes", real[0]], faults)] == sorted([*classes, real[0]])
    assert len(teeth.chosen_faults([], faults)) == len(faults)
    with pytest.raises(UserError, match=r"^TEETH_FAULTS: nosuch is not a fault; give classes, real or folder"):
        teeth.chosen_faults(["classes", "nosuch"], faults)
