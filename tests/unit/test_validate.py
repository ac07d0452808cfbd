"""make validate (issue #25): the series read and applied before any build, the verdicts with
their odds, the runs interleaved with the same seeds on both sides, bad input as one line."""

import json
import shutil
from pathlib import Path

import pytest

from txnstorm.errors import UserError
from txnstorm.runner import validate as v

PATCH = """From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: A Developer <dev@example.org>
Subject: [PATCH 1/2] block: say hello

---
 hello.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/hello.c b/hello.c
--- a/hello.c
+++ b/hello.c
@@ -1,4 +1,4 @@
 int main(void)
 {
-    return 0;
+    return 1;
 }
--
2.39.2
"""
SECOND = PATCH.replace("1/2] block: say hello", "2/2] block: say goodbye").replace(
    "-    return 0;\n+    return 1;", "-    return 1;\n+    return 2;"
)
COVER = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: A Developer <dev@example.org>
Subject: [PATCH 0/2] block: greetings

Two patches.
"""


def base_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "qemu"
    tree.mkdir()
    (tree / "configure").write_text("#!/bin/sh\n")
    (tree / "VERSION").write_text("10.2.2\n")
    (tree / "hello.c").write_text("int main(void)\n{\n    return 0;\n}\n")
    return tree


def test_a_series_is_a_directory_of_format_patch_files_in_name_order(tmp_path):
    series = tmp_path / "v3"
    series.mkdir()
    (series / "0002-b.patch").write_text(SECOND)
    (series / "0001-a.patch").write_text(PATCH)
    (series / "cover.txt").write_text(COVER)
    assert [p.name for p in v.read_series(series, tmp_path / "split")] == ["0001-a.patch", "0002-b.patch"]


def test_an_mbox_is_split_into_its_patches_without_the_cover_letter(tmp_path):
    mbox = tmp_path / "v3.mbx"
    mbox.write_text(COVER + "\n" + PATCH + "\n" + SECOND)
    patches = v.read_series(mbox, tmp_path / "split")
    assert [p.name for p in patches] == [
        "0002-PATCH-1-2-block-say-hello.patch", "0003-PATCH-2-2-block-say-goodbye.patch"
    ]  # fmt: skip
    tree = base_tree(tmp_path)
    applied = v.apply_series(tree, patches, tmp_path / "series-tree", "the base")
    assert (applied / "hello.c").read_text().endswith("    return 2;\n}\n")
    assert (tree / "hello.c").read_text().endswith("    return 0;\n}\n"), "the base tree is left as it was"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda d: d / "missing", "no such file or directory"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no patches in it"),
        (lambda d: (d / "notes.txt").write_text("hello\n") and d / "notes.txt", "not a patch, an mbox nor"),
        (lambda d: (d / "c.mbx").write_text(COVER) and d / "c.mbx", "an mbox with no patch in it"),
    ],
)  # fmt: skip
def test_nothing_to_apply_is_one_line(tmp_path, make, said):
    with pytest.raises(UserError, match=said):
        v.read_series(make(tmp_path), tmp_path / "split")


def test_a_patch_that_does_not_apply_is_named_and_leaves_no_tree(tmp_path):
    tree = base_tree(tmp_path)
    series = tmp_path / "v1"
    series.mkdir()
    (series / "0001-b.patch").write_text(SECOND)  # needs the first patch
    with pytest.raises(UserError, match=r"^0001-b.patch does not apply to QEMU 10.2.2 \(make qemu\): "):
        v.apply_series(tree, v.read_series(series, tmp_path / "s"), tmp_path / "out", "QEMU 10.2.2 (make qemu)")
    assert not (tmp_path / "out").exists()


def test_a_patch_of_an_mbox_that_does_not_apply_is_named_by_its_mail_and_first_failed_hunk(tmp_path):
    """The user's file and mail (not the split 0002-PATCH-... file), the hunk and its file (not patch's
    "The text leading up to this was:"), and no .rej named: the tree is gone."""
    tree = base_tree(tmp_path)
    mbox = tmp_path / "v3.mbx"
    mbox.write_text(COVER + "\n" + SECOND)  # needs the first patch
    with pytest.raises(UserError) as said:
        v.apply_series(tree, v.read_series(mbox, tmp_path / "s"), tmp_path / "out", "QEMU 10.2.2 (make qemu)")
    assert str(said.value) == ("v3.mbx, mail 2 ([PATCH 2/2] block: say goodbye) does not apply to QEMU 10.2.2 "
                               "(make qemu): hunk #1 of hello.c does not match the base at line 1")  # fmt: skip
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("*.rej"))


@pytest.mark.parametrize(("patch", "says"), [
    (PATCH.replace("hello.c", "nosuch.c"), "p.patch does not apply to b: the base has no nosuch.c to patch"),
    (PATCH.replace("-    return 0;\n+    return 1;", "-    return 1;\n+    return 0;"),
     "p.patch does not apply to b: the base already has it (or its reverse) in hello.c"),
])  # fmt: skip
def test_a_patch_for_another_tree_says_why_in_one_clause(tmp_path, patch, says):
    (tmp_path / "p.patch").write_text(patch)
    with pytest.raises(UserError) as said:
        v.apply_series(base_tree(tmp_path), [tmp_path / "p.patch"], tmp_path / "out", "b")
    assert str(said.value) == says


def test_a_fuzzy_hunk_does_not_apply(tmp_path):
    """As git am: a hunk whose context no longer matches is refused, not applied somewhere near."""
    tree = base_tree(tmp_path)
    (tree / "hello.c").write_text("int main(void)\n{\n    return 0;\n}\n".replace("{", "{ /* changed */"))
    (tmp_path / "p.patch").write_text(PATCH)
    with pytest.raises(UserError, match="does not apply"):
        v.apply_series(tree, [tmp_path / "p.patch"], tmp_path / "out", "b")


@pytest.mark.parametrize("value", ["0", "-1", "x", ""])
def test_runs_must_be_a_positive_number(value):
    with pytest.raises(UserError, match=f"RUNS={value} is not a positive number"):
        v.check_runs(value)


def test_a_base_must_be_built_or_a_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(v.teeth, "stock_build", lambda version, cache: None)
    monkeypatch.setattr(v.teeth, "source_trees", lambda cache: {"10.2.2": tmp_path})
    with pytest.raises(UserError, match=r"BASE=9.9.9 is not built \(built: 10.2.2\); build it first: make qemu"):
        v.resolve_base("9.9.9", tmp_path)
    with pytest.raises(UserError, match="neither a QEMU source tree nor a version"):
        v.resolve_base("latest", tmp_path)
    with pytest.raises(UserError, match="is not a QEMU source tree"):
        v.resolve_base(str(tmp_path), tmp_path)
    assert v.resolve_base(str(base_tree(tmp_path)), tmp_path).qemu is None, "a tree is built by validate"
    with pytest.raises(UserError, match="name the base"):
        v.resolve_base("", tmp_path)


def test_fisher_tail_probabilities():
    assert v.fisher_one_sided(3, 3, 0, 3) == pytest.approx(1 / 20)
    assert v.fisher_one_sided(3, 5, 0, 5) == pytest.approx(10 / 120)
    assert v.fisher_one_sided(5, 5, 0, 5) == pytest.approx(1 / 252)
    assert v.fisher_one_sided(1, 3, 0, 3) == pytest.approx(0.5)
    assert v.fisher_one_sided(0, 3, 0, 3) == 1.0


def tally(runs=5, *, fails=0, reproduced=0, errors=0, cancels=0, issue="KI-11", qemu="10.2.2") -> v.Tally:  # noqa: PLR0913
    t = v.Tally()
    for i in range(runs):
        kinds = ["FAIL"] * fails + ["WARN"] * reproduced + ["ERROR"] * errors + ["CANCEL"] * cancels
        status = kinds[i] if i < len(kinds) else "PASS"
        t.add(status, f"oracle violation {i}", issue if status == "WARN" else None, 100 + i, qemu)
    return t


KI11_REPRODUCER = "tests/vhost_user_blk.py:GuestOnDaemonDrainHang.test_drain_while_the_guest_writes"
RACE = "tests/transaction_matrix.py:TransactionMatrix.test_guest_races_the_transaction"
GUEST_ONLY = "tests/drain_stop_cont.py:StoppedVmIsStill.test_stopped_vm_writes_nothing_and_resumes"


def test_a_series_that_fails_where_the_base_does_not_is_a_regression_with_its_odds():
    verdict = v.compare("t", tally(fails=0), tally(fails=3))
    assert verdict.kind == "regression"
    assert verdict.line.startswith("series 3/5 FAIL, base 0/5; chance of a split this uneven by luck 8.3%")
    assert "could be luck" in verdict.line, "above 5 %: it says so"
    sure = v.compare("t", tally(fails=0), tally(fails=5))
    assert sure.kind == "regression" and "could be luck" not in sure.line and sure.odds == pytest.approx(1 / 252)


def test_fixed_only_when_a_miss_is_unlikely():
    fixed = v.compare("t", tally(reproduced=5), tally())
    assert fixed.kind == "fixed" and fixed.line == "KI-11 not seen in 5 series runs, base 5/5, chance of a miss 0.40%"
    likely = v.compare("t", tally(reproduced=4), tally())
    assert likely.kind == "not-fixed" and "chance of a miss 2.38%: a miss is likely, not judged fixed" in likely.line
    few = v.compare("t", tally(runs=3, reproduced=3), tally(runs=3))
    assert few.kind == "not-fixed", "3 of 3 against 0 of 3 could be luck (5 %)"


def test_a_fix_that_unmasks_another_known_issue_says_both():
    """The KI-11 fix on 10.2.2 (measured): KI-11 in 5 of 5 base runs, none on the series, where one
    run met KI-13 instead.  KI-11 is fixed; KI-13 is said, not folded into "seen on both"."""
    ended = v.compare(KI11_REPRODUCER, tally(reproduced=5), tally(reproduced=1, issue="KI-13"))
    assert ended.kind == "fixed", ended  # KI-13 is known on 10.2.2 in that test: 1 of 5 could be luck
    assert ended.line == ("KI-11 not seen in 5 series runs, base 5/5, chance of a miss 0.40%; "
                          "on the series only: KI-13 1/5 (the base never showed it)")  # fmt: skip
    began = v.compare(RACE, tally(), tally(reproduced=2, issue="KI-7"))
    assert began.kind == "new-on-series" and "on the series only: KI-7 2/5" in began.line
    both = v.compare("t", tally(reproduced=5), tally(reproduced=1))
    assert both.kind == "unchanged", "the same issue on both sides, less often: not fixed"
    assert v.compare("t", tally(fails=2, reproduced=3), tally(reproduced=3)).kind == "not-fixed", "FAIL gone, 2 of 5"


def test_a_known_issue_only_the_series_shows_is_a_regression_outside_where_it_is_known():
    """Issue #38: the revert of 9c707525cb on 10.2.2, RUNS=1: KI-8 (WARN on the series, by the rules
    then) in a guest-only test, the base clean.  KI-8 was fixed in 9.0: a regression, exit 1."""
    came_back = v.compare(GUEST_ONLY, tally(runs=1), tally(runs=1, reproduced=1, issue="KI-8"))
    assert came_back.kind == "regression", came_back
    assert came_back.line == (
        "series KI-8 1/1, base never (1 runs): regression of KI-8 (fixed in 9.0 by 9c707525cb; not seen on "
        "10.2.2 before); chance of a split this uneven by luck 50.0%; could be luck: run more (RUNS=)"
    )
    # on 7.2.22, where KI-8 is known, but in a test that never reproduced it: still the series' doing
    elsewhere = v.compare(GUEST_ONLY, tally(runs=3, qemu="7.2.22"), tally(runs=3, reproduced=1, issue="KI-8",
                                                                           qemu="7.2.22"))  # fmt: skip
    assert elsewhere.kind == "regression" and "KI-8 outside where it is known: this test never reproduced" in (
        elsewhere.line
    )
    # runs that did not say their QEMU's version: no entry can know the issue there
    unsaid = v.compare(RACE, tally(runs=3, qemu=""), tally(runs=3, reproduced=1, issue="KI-7", qemu=""))
    assert unsaid.kind == "regression" and "did not say their QEMU's version" in unsaid.line


def test_a_known_issue_where_it_is_known_is_new_on_series_unless_the_odds_say_otherwise():
    """KI-7 is known on 10.2.2 in the race test: the base may simply have missed it (1 of 3 against
    0 of 3 is 50 % luck); 5 of 5 against 0 of 5 (0.4 %) is not a miss but the series."""
    assert v.compare(RACE, tally(runs=3), tally(runs=3, reproduced=1, issue="KI-7")).kind == "new-on-series"
    often = v.compare(RACE, tally(runs=5), tally(runs=5, reproduced=5, issue="KI-7"))
    assert often.kind == "regression" and often.odds == pytest.approx(1 / 252)
    assert "KI-7 is known on QEMU 10.2.2 in this test, but not this often" in often.line


def test_recorded_runs_of_the_revert_are_judged_a_regression(tmp_path):
    """The issue's runs as results.json recorded them (the series' WARN of KI-8, the base's PASS),
    judged again with today's rules: a regression, so make validate exits 1."""
    base = job(tmp_path, "base-1", [{"name": GUEST_ONLY, "status": "PASS",
                                     "whiteboard": json.dumps({"qemu": "10.2.2", "seed": 11})}])  # fmt: skip
    reason = ("known issue KI-8, still reproduces on QEMU 10.2.2: QEMU crashed: QEMU killed by SIGABRT: "
              "qemu-system-x86_64: ../nbd/server.c:1584: blk_aio_attached: Assertion `client->recv_coroutine == "
              "NULL' failed.")  # fmt: skip
    series = job(tmp_path, "series-1", [{"name": GUEST_ONLY, "status": "WARN", "fail_reason": reason,
                                         "whiteboard": json.dumps({"qemu": "10.2.2", "failure": {
                                             "kind": "crash", "reason": reason, "known_issue": "KI-8"}})}])  # fmt: skip
    tallies: dict[str, dict[str, v.Tally]] = {"base": {}, "series": {}}
    v.tally_job(base, 11, tallies["base"])
    v.tally_job(series, 11, tallies["series"])
    (verdict,) = v.judge_all(tallies)
    assert verdict.kind == "regression" and "regression of KI-8 (fixed in 9.0 by 9c707525cb" in verdict.line
    replay = v.replay_line(verdict, tallies["series"][GUEST_ONLY], Path("/q/qemu"))
    assert replay == f"make run TEST={GUEST_ONLY} SEED=11 QEMU=/q/qemu", "the run that showed it"


def test_unchanged_and_one_sided_errors_and_cancels_are_said_plainly():
    assert v.compare("t", tally(fails=2), tally(fails=2)).kind == "unchanged"
    assert v.compare("t", tally(reproduced=3), tally(reproduced=3)).kind == "unchanged"
    error = v.compare("t", tally(), tally(errors=2))
    assert error.kind == "error-on-one-side" and error.line.startswith("ERROR on the series only (2/5)")
    cancel = v.compare("t", tally(cancels=5), tally())
    assert cancel.kind == "cancel-on-one-side" and "CANCEL on the base only" in cancel.line
    not_judged = v.compare("t", tally(reproduced=5), tally(errors=5))
    assert not_judged.kind == "error-on-one-side", "a series that only ERRORed fixed nothing"


def job(tmp_path: Path, name: str, tests: list[dict]) -> Path:
    d = tmp_path / name
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps({"tests": tests}))
    return d


def test_runs_alternate_sides_with_the_same_seed_and_are_tallied(tmp_path):
    calls = []
    outcomes = {"base": "PASS", "series": "FAIL"}

    def run_job(refs, results, seed, qemu):
        side = results.name.split("-")[0]
        calls.append((side, seed, qemu.name))
        return job(tmp_path, results.name, [
            {"name": "tests/a.py:A.test_x", "status": outcomes[side], "fail_reason": "VIOLATION\nmore",
             "whiteboard": "{}"},
            {"name": "tests/a.py:A.test_ki", "status": "WARN", "whiteboard": json.dumps(
                {"failure": {"known_issue": "KI-7"}} if side == "base" else {"known_issue": {"reproduced": False}})},
        ]), 1.0  # fmt: skip

    sides = [v.Side("base", Path("/b/qemu-base")), v.Side("series", Path("/s/qemu-series"))]
    tallies = v.run_sides(sides, ["tests/a.py"], [11, 22], tmp_path / "r", run_job)
    assert calls == [("base", "11", "qemu-base"), ("series", "11", "qemu-series"),
                     ("base", "22", "qemu-base"), ("series", "22", "qemu-series")]  # fmt: skip
    assert tallies["series"]["tests/a.py:A.test_x"].fails == 2
    assert tallies["series"]["tests/a.py:A.test_x"].seeds == [11, 22]
    assert tallies["base"]["tests/a.py:A.test_ki"].reproduced == 2
    assert tallies["series"]["tests/a.py:A.test_ki"].reproduced == 0
    verdicts = {x.test: x.kind for x in v.judge_all(tallies)}
    assert verdicts == {"tests/a.py:A.test_x": "regression", "tests/a.py:A.test_ki": "not-fixed"}


def test_validate_end_to_end_without_qemu(tmp_path, monkeypatch):
    """Every input, the series applied, a build per side (faked), the runs, the page, the exit."""
    tree = base_tree(tmp_path)
    series = tmp_path / "v1"
    series.mkdir()
    (series / "0001-a.patch").write_text(PATCH)
    built = []

    def build(source, log, cache):
        built.append(source)
        return source / "bin" / "qemu-system-x86_64", 12.0, "10 hits, 1 misses"

    monkeypatch.setattr(v, "build", build)

    def run_job(refs, results, seed, qemu):
        status = "FAIL" if "series" in results.name else "PASS"
        made = job(results, "job-1", [{"name": "tests/a.py:A.test_x", "status": status,
                                       "fail_reason": "<b>oracle</b>", "whiteboard": "{}"}])  # fmt: skip
        (results / "latest").symlink_to(made.name)  # as Avocado leaves it
        return made, 1.0

    said = []
    outcome = v.validate(str(series), str(tree), ["tests/a.py"], "3", tmp_path / "out", seed=7, say=said.append,
                         run_job=run_job, cache=tmp_path / "cache")  # fmt: skip
    assert [p.name for p in built] == ["qemu", tree.name + "-" + v.series_digest([series / "0001-a.patch"])]
    assert [x.kind for x in outcome.regressions] == ["regression"]
    text = "\n".join(said)
    assert "series 3/3 FAIL, base 0/3; chance of a split this uneven by luck 5.0%" in text
    assert "replay on the series: make run TEST=tests/a.py:A.test_x SEED=" in text
    page = (tmp_path / "out" / "validate.html").read_text()
    assert "&lt;b&gt;oracle&lt;/b&gt;" in page and "<b>oracle</b>" not in page, "escaped"
    assert "(1 patch: 0001-a.patch)" in page and "<td>FAIL 3/3</td>" in page
    assert json.loads((tmp_path / "out" / "validate.json").read_text())["verdicts"][0]["kind"] == "regression"

    # judged again from its results dir (nothing runs): the same verdicts, the page written anew
    (tmp_path / "out" / "validate.html").unlink()
    again = v.judge_again(tmp_path / "out", say=said.append)
    assert again.verdicts == outcome.verdicts and (tmp_path / "out" / "validate.html").is_file()
    with pytest.raises(UserError, match="not the results dir of a make validate"):
        v.judge_again(tmp_path)
    shutil.rmtree(tmp_path / "out" / "base-2")  # a run gone: no verdict is written from the rest
    before = (tmp_path / "out" / "validate.json").read_text()
    with pytest.raises(UserError, match="base-2 left no results"):
        v.judge_again(tmp_path / "out")
    assert (tmp_path / "out" / "validate.json").read_text() == before


def git_checkout(tmp_path: Path) -> Path:
    """A tiny 'QEMU checkout': a base commit and two commits of a series on top."""
    import subprocess

    repo = base_tree(tmp_path)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       check=True, capture_output=True)  # fmt: skip

    git("init", "-q", "-b", "master")
    git("add", ".")
    git("commit", "-q", "-m", "base")
    git("tag", "v1")
    for value in ("1", "2"):
        (repo / "hello.c").write_text(f"int main(void)\n{{\n    return {value};\n}}\n")
        git("commit", "-q", "-am", f"block: return {value}")
    return repo


def test_a_range_of_a_git_checkout_is_built_from_worktrees_left_nowhere(tmp_path, monkeypatch):
    import subprocess

    repo = git_checkout(tmp_path)
    built = []

    def build(source, log, cache):
        built.append((source, (source / "hello.c").read_text().split("return ")[1][0]))
        return source / "qemu-system-x86_64", 3.0, "hits"

    monkeypatch.setattr(v, "build", build)

    def run_job(refs, results, seed, qemu):
        return job(tmp_path, results.name, [{"name": "t", "status": "PASS", "whiteboard": "{}"}]), 1.0

    said = []
    outcome = v.validate("v1..master", str(repo), ["t"], "1", tmp_path / "out", say=said.append, run_job=run_job,
                         cache=tmp_path / "cache")  # fmt: skip
    assert [value for _, value in built] == ["0", "2"], "the base at v1, the series at master"
    assert outcome.series_patches[0].endswith("block: return 1") and len(outcome.series_patches) == 2
    assert "validate: 2 commits of" in said[0]
    listed = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(listed.splitlines()) == 1, f"worktrees left in the checkout: {listed}"


@pytest.mark.parametrize(
    ("series", "says"),
    [
        ("v1..nosuch", "nosuch is not a revision of"),
        ("master..v1", "no commit in it"),
    ],
)  # fmt: skip
def test_a_bad_range_is_one_line(tmp_path, series, says):
    repo = git_checkout(tmp_path)
    with pytest.raises(UserError, match=says):
        v.parse_range(series, str(repo))
    with pytest.raises(UserError, match="BASE must be the QEMU git checkout"):
        v.parse_range("v1..master", str(tmp_path / "elsewhere"))
    assert v.parse_range(str(tmp_path), str(repo)) is None, "a path is a series, not a range"


def test_the_base_runs_of_the_same_build_tests_seed_and_suite_are_reused(tmp_path):
    """A second series against the same base with the same SEED runs only its own side; a base run
    that ERRORed is not kept (the suite's trouble is run again); another binary is another base."""
    qemu = tmp_path / "base" / "qemu-system-x86_64"
    qemu.parent.mkdir()
    qemu.write_bytes(b"base build")
    calls = []
    statuses = {"base": "PASS"}
    made = iter(range(100))

    def run_job(refs, results, seed, qemu):
        side = results.name.split("-")[0]
        calls.append((side, seed))
        return job(tmp_path / str(next(made)), results.name,
                   [{"name": "tests/a.py:A.test_x", "status": statuses.get(side, "FAIL"), "whiteboard": "{}"}]), 1.0

    def validate_once(binary: Path) -> tuple[list[tuple[str, str]], dict[str, dict[str, v.Tally]]]:
        calls.clear()
        kept = v.KeptBaseRuns(tmp_path / "kept", binary, ["tests/a.py"])
        sides = [v.Side("base", binary), v.Side("series", Path("/s/qemu"))]
        said: list[str] = []
        tallies = v.run_sides(sides, ["tests/a.py"], [11, 22], tmp_path / "r", run_job, kept=kept, say=said.append)
        return list(calls), tallies

    first, _ = validate_once(qemu)
    assert first == [("base", "11"), ("series", "11"), ("base", "22"), ("series", "22")]
    again, tallies = validate_once(qemu)
    assert again == [("series", "11"), ("series", "22")], "the base's runs were reused"
    assert (tmp_path / "r" / "base-2" / v.REUSED).is_file(), "what judge_again reads"
    assert v.reused_runs(tmp_path / "r", [11, 22]) == 2
    assert tallies["base"]["tests/a.py:A.test_x"].runs == 2 and tallies["base"]["tests/a.py:A.test_x"].fails == 0
    assert [x.kind for x in v.judge_all(tallies)] == ["regression"]

    other = tmp_path / "other" / "qemu-system-x86_64"
    other.parent.mkdir()
    other.write_bytes(b"another build")
    statuses["base"] = "ERROR"
    assert validate_once(other)[0][::2] == [("base", "11"), ("base", "22")], "another binary runs its base"
    assert validate_once(other)[0][::2] == [("base", "11"), ("base", "22")], "an ERROR run is not kept"
