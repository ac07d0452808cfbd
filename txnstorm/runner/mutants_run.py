"""``make mutants``: does the tier kill each mutant of ``mutants.generate`` (a drained section, a
quiesce or a transaction step deleted from QEMU's source)?

    make mutants [MUTANTS_SHARD=i/n] [MUTANTS_LIMIT=n] [MUTANTS="io.c:392 step"] [TAGS=quick]
    make mutants MUTANTS_LIST=1                # every mutant's id, and nothing built
    make mutants MUTANTS_PEER=iotests          # the same mutants judged by QEMU's iotests of the area

ONE build dir is reused (``scripts/build-qemu`` of make qemu's 10.2.2 source into
``$TXNSTORM_CACHE/mutants``, kept with ``QEMU_BUILD_DIR``, through the shared compiler cache): per
mutant its file is patched (a new file: the hard link to make qemu's source is never written
through), ninja recompiles that one object and re-links, the binaries are copied to
``$TXNSTORM_CACHE/mutants/run/bin`` (beside the entry's firmware), the tier runs against them with
``FAILFAST``, and the file is restored (ninja's next build of it is a compiler-cache hit).

The unmutated build runs the whole tier once first (``suite-baseline.json``, kept while the tier is
the same).  A mutant is **killed** when a test ends worse than it did there (the first one, and how
many seconds into the tier): a FAIL, ERROR or Avocado timeout where stock did not, or a WARN where
stock PASSed (a listed issue's signature in a test that never reproduced it is WARN "outside what
was measured" for a user, since nothing says that QEMU changed; here the mutant did, as ``make
validate`` judges a series against its base), **survived** when every test ended as on stock,
**not reached** when ``make coverage``'s run of the same tier
(``results/coverage/<tier>/coverage.json``, if there) never ran the function that holds it, or the
function it calls (``never_reached``): that run could not
have killed it, so it is not run (``MUTANTS_UNREACHED=1`` runs it anyway), **build failed** when the
mutant does not compile, **equivalent** when ``mutants.EQUIVALENT`` shows from the source that it
cannot change behaviour (not run; its reason in the table).  The score is killed / (killed +
survived + not reached).
Results: ``results/mutants/<shard>/mutants.json`` and ``table.txt``, one line per mutant as it ends.

**The peer** (``MUTANTS_PEER=iotests``, issue #36's "the same mutants against the iotests"): the same
mutants, built the same way, judged by QEMU's iotests of the area (``peer.IOTESTS``, the tree's
``check -qcow2`` from the kept build dir, qemu-nbd built there too) instead of the tier.  The
unmutated build runs them once first: a test that does not pass there (185 and iothreads-create are
timing-flaky under TCG) could not tell a mutant from the source, and is left out, said in the table.
A mutant is **killed** when an iotest that passed on the unmutated build fails twice in a row (a
timing-flaky one can fail once on a loaded host) or hangs (no verdict within ``iotest_timeout``: a
drain that never ends hangs some of them, and they have no timeout of their own); check cannot stop
at the first failure, so each test is a check of its own, quickest first, and the first one that
fails ends the mutant's run.  **Not reached** reads
``results/coverage/iotests/coverage.json`` (``make coverage-iotests``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from txnstorm.runner import coverage, mutants, peer, runs, teeth

KILLED, SURVIVED, UNREACHED, BUILD_FAILED, NO_RESULT = "killed", "survived", "not reached", "build failed", "no result"
EQUIVALENT = "equivalent"
# A FAIL, an ERROR (as make teeth counts them), or a test Avocado's timeout interrupted (a QEMU that
# hung where no watchdog of the test looked: 10.2.2 without bdrv_inc_in_flight in blk_co_do_pwritev_part).
KILLING = (*teeth.CAUGHT, "INTERRUPTED")


@dataclass(frozen=True)
class Outcome:
    id: str
    label: str  # what the mutant deletes
    function: str
    status: str
    detail: str = ""  # the killing test and its reason, or why it did not run
    first_kill_s: float | None = None  # from the tier's first test start to the end of the first killing test
    build_s: float = 0.0
    tier_s: float = 0.0

    def line(self) -> str:
        kill = f"{self.first_kill_s:5.0f} s" if self.first_kill_s is not None else f"{'-':>7}"
        return (f"{self.id:62} {self.status:12} {kill} build {self.build_s:4.0f} s tier {self.tier_s:4.0f} s  "
                f"{self.detail[:110]}")  # fmt: skip


def function_counts(coverage_json: Path) -> dict[str, dict[str, int]] | None:
    """{file: {function: how often it ran}} of a gcovr JSON (None when there is none)."""
    try:
        data = json.loads(coverage_json.read_text())
    except (OSError, ValueError):
        return None
    return {str(f["file"]): coverage.function_counts(f) for f in data.get("files", [])}


def never_reached(mutant: mutants.Mutant, counts: Mapping[str, Mapping[str, int]] | None) -> bool:
    """True when the coverage run's data has the mutant's function and it never ran (neither its
    entry nor any of its lines: ``coverage.function_counts``; one line's count is not trusted), or
    the function its statement calls is this file's and never ran (``transaction_action`` ran, its
    call of ``block_dirty_bitmap_enable_action`` did not).  A ``hook`` or ``step`` line is an
    initializer, no code: always run."""
    if counts is None or mutant.site.kind in ("hook", "step"):
        return False
    of_file = next((v for k, v in counts.items() if k == mutant.file or k.endswith("/" + mutant.file)), None)
    if of_file is None:
        return False
    callee = mutant.site.what.removesuffix("()")  # a callee of this file that never ran was never called
    return of_file.get(mutant.site.function) == 0 or of_file.get(callee) == 0


def score(outcomes: Sequence[Outcome]) -> tuple[int, int]:
    """(killed, of the mutants that count: killed, survived, not reached)."""
    counted = [o for o in outcomes if o.status in (KILLED, SURVIVED, UNREACHED)]
    return sum(o.status == KILLED for o in counted), len(counted)


def table(outcomes: Sequence[Outcome], name: str, notes: Sequence[str] = ()) -> str:
    """One line per mutant, the score, the survivors; ``notes`` (the iotests left out) after the score."""
    killed, counted = score(outcomes)
    rows = [f"{'mutant':62} {'status':12} {'1st kill':>7} {'':>12} {'':>13}  detail"]
    rows += [o.line() for o in outcomes]
    pct = f"{100 * killed / counted:.0f} %" if counted else "-"
    rows.append(f"{name}: mutation score {killed}/{counted} ({pct}); "
                + ", ".join(f"{sum(o.status == s for o in outcomes)} {s}"
                            for s in (KILLED, SURVIVED, UNREACHED, EQUIVALENT, BUILD_FAILED, NO_RESULT)))  # fmt: skip
    rows += notes
    rows += [f"equivalent: {o.id}: {o.detail}" for o in outcomes if o.status == EQUIVALENT]
    survivors = [o for o in outcomes if o.status in (SURVIVED, UNREACHED)]
    if survivors:
        rows.append("survivors (file:line, what, function):")
        rows += [f"  {o.id.rsplit(':', 2)[0]}  {o.label}  in {o.function}  ({o.status})" for o in survivors]
    return "\n".join(rows) + "\n"


def summed(root: Path, name: str) -> tuple[list[Outcome], list[str]]:
    """Every mutant judged in ``root/<name>-shard*of*/mutants.json`` (a campaign's shards, and any
    picked run), the newest result of each id, in the mutants' order; and the dirs read."""
    newest: dict[str, tuple[float, Outcome]] = {}
    read = []
    for path in sorted(root.glob(f"{name}-shard*of*/mutants.json")):
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        read.append(path.parent.name)
        when = path.stat().st_mtime
        for entry in entries:
            outcome = Outcome(**entry)
            if outcome.id not in newest or newest[outcome.id][0] < when:
                newest[outcome.id] = (when, outcome)
    return [o for _, o in sorted(newest.values(), key=lambda pair: order_key(pair[1].id))], read


def order_key(mutant_id: str) -> tuple[int, str, int]:
    """The campaign's order: mutants.FILES' order, then the line."""
    file, line = mutant_id.split(":")[:2]
    rank = next((i for i, f in enumerate(mutants.FILES) if file == f or (f.endswith("/") and file.startswith(f))),
                len(mutants.FILES))  # fmt: skip
    return rank, file, int(line)


# ------------------------------------------------------------------ the iotests peer (pure)

IOTEST_TIMEOUT_FACTOR, IOTEST_MIN_TIMEOUT_S = 5.0, 120.0
IOTEST_BASELINE_TIMEOUT_S = 1800.0  # the unmutated build's run of one iotest (183 s the slowest measured)
ITS_OWN_VERDICTS = ("pass", "fail", "not run")  # what check says of a test; "timeout" is ours


@dataclass(frozen=True)
class IotestResult:
    test: str
    status: str  # pass, fail, not run (check's words), or timeout (no verdict within its time)
    seconds: float
    reason: str = ""  # a failure's first line of difference, or why it has no verdict


def tap_status(output: str, test: str) -> str:
    """check -tap's verdict on ``test`` (``ok qcow2 055``, ``not ok qcow2 055``, ``ok qcow2 055 # SKIP``):
    pass, fail or not run; fail when check printed none for it (check itself failed)."""
    for line in output.splitlines():
        m = re.fullmatch(r"(not ok|ok) \S+ (\S+)( # SKIP)?\s*", line)
        if m and m.group(2) == test:
            return "fail" if m.group(1) == "not ok" else "not run" if m.group(3) else "pass"
    return "fail"


def first_difference(output: str) -> str:
    """A failed iotest's first line of output its reference does not have (check prints the diff;
    the ``+`` side is what the mutant said), else its first missing line, else check's first line."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    said = [ln for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    missing = [ln for ln in lines if ln.startswith("-") and not ln.startswith("---")]
    return (said or missing or lines or ["no output"])[0].strip()[:200]


def iotest_timeout(baseline_s: float) -> float:
    """How long a mutant's run of an iotest may take before it counts as hung: 5 times its run on the
    unmutated build, at least 120 s (a slow host's spread, measured under TCG beside other jobs)."""
    return max(IOTEST_MIN_TIMEOUT_S, IOTEST_TIMEOUT_FACTOR * baseline_s)


def baseline_split(results: Sequence[IotestResult]) -> tuple[list[IotestResult], list[IotestResult]]:
    """The unmutated build's results as (the tests a mutant runs, quickest first; those left out:
    failed, hung or not run there, since a mutant could not be told from the source by them)."""
    passing = sorted((r for r in results if r.status == "pass"), key=lambda r: r.seconds)
    return passing, [r for r in results if r.status != "pass"]


def judge_iotests(mutant: mutants.Mutant, results: Sequence[IotestResult], build_s: float) -> Outcome:
    """Killed by the first iotest that failed or hung (and seconds from the first test's start to its
    end), survived when every one passed."""
    base = {"id": mutant.id, "label": mutant.site.label, "function": mutant.site.function,
            "build_s": round(build_s, 1), "tier_s": round(sum(r.seconds for r in results), 1)}  # fmt: skip
    if not results:
        return Outcome(**base, status=NO_RESULT, detail="no iotest ran")
    for n, result in enumerate(results):
        if result.status in ("fail", "timeout"):
            return Outcome(**base, status=KILLED, detail=f"{result.test}: {result.status} {result.reason}".strip(),
                           first_kill_s=round(sum(r.seconds for r in results[: n + 1]), 1))  # fmt: skip
    ran = sum(r.status == "pass" for r in results)
    return Outcome(**base, status=SURVIVED, detail=f"{ran} of {len(results)} iotests passed")


def excluded_line(left_out: Sequence[IotestResult]) -> str:
    """The table's line of the iotests the unmutated build did not pass (none: said too)."""
    if not left_out:
        return "iotests: every one passed on the unmutated build; none left out"
    return ("iotests left out (not passing on the unmutated build): "
            + "; ".join(f"{r.test} {r.status} {r.reason}".strip() for r in left_out))  # fmt: skip


def write_file(path: Path, text: str) -> None:
    """A new file in place of ``path`` (never through a hard link to make qemu's source)."""
    tmp = path.with_name(path.name + ".txnstorm-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def mutant_build(cache: Path, log: Path, say: Callable[[str], None]) -> tuple[Path, Path]:
    """The one kept build dir of the mutants (cached): (the entry's qemu-system-x86_64, the build dir)."""
    return coverage.kept_build(cache, "", cache / "mutants", log, say)


def relink(work: Path, run_dir: Path, entry: Path, log: Path, targets: Sequence[str] = coverage.BINARIES) -> str | None:
    """ninja in the kept build dir (``targets``: the iotests want qemu-nbd too), the binaries copied to
    ``run_dir/bin`` (firmware: the entry's); None, or why it failed."""
    with open(log, "a") as out:
        done = subprocess.run(["nice", "-n", "19", "ninja", "-C", str(work / "build"), *targets],
                              stdout=out, stderr=subprocess.STDOUT, check=False)  # fmt: skip
    if done.returncode != 0:
        return f"ninja exit {done.returncode} (log {log})"
    (run_dir / "bin").mkdir(parents=True, exist_ok=True)
    share = run_dir / "share"
    if not share.is_symlink():
        share.symlink_to(entry / "share")
    for binary in coverage.BINARIES:  # a new file each: one still running (ETXTBSY) keeps its old inode
        target = run_dir / "bin" / Path(binary).name
        shutil.copy2(work / "build" / binary, target.with_name(target.name + ".new"))
        os.replace(target.with_name(target.name + ".new"), target)
    return None


def still_running(run_dir: Path) -> list[int]:
    """PIDs of processes whose binary is in ``run_dir/bin`` (a previous mutant's QEMU not yet gone)."""
    found = []
    for exe in Path("/proc").glob("[0-9]*/exe"):
        try:
            if Path(os.readlink(exe)).parent == run_dir / "bin":
                found.append(int(exe.parent.name))
        except (OSError, ValueError):
            continue
    return found


def wait_quiet(run_dir: Path, seconds: float, say: Callable[[str], None]) -> None:
    """Wait (up to ``seconds``) until no QEMU of the previous mutant runs: the next tier must not
    share the host with it.  Said when one outlives the wait (never killed here: not ours)."""
    deadline = time.monotonic() + seconds
    while (pids := still_running(run_dir)) and time.monotonic() < deadline:
        time.sleep(1)
    if pids:
        say(f"mutants: a previous mutant's process still runs after {seconds:.0f} s: PIDs {pids}")


def run_iotest(check: Path, test: str, timeout: float, log: Path) -> IotestResult:
    """One iotest, a check -qcow2 -tap of its own (``peer.run_check``: one that hangs is ended with
    its QEMUs); its output appended to ``log``."""
    ran = peer.run_check(check, ["-qcow2", "-tap", test], timeout=timeout)
    if ran.returncode is None:
        status, reason = "timeout", f"no verdict within {timeout:.0f} s (ended)"
    else:
        status = tap_status(ran.output, test)
        reason = first_difference(ran.output) if status == "fail" else ""
    with open(log, "a") as out:
        out.write(f"=== {test}: {status} in {ran.seconds:.1f} s\n{ran.output}\n")
    return IotestResult(test, status, ran.seconds, reason)


def run_iotests_until_one_fails(check: Path, passing: Sequence[IotestResult], log: Path) -> list[IotestResult]:
    """The iotests of ``passing`` (the unmutated build's results) in order, each with its
    ``iotest_timeout``, until the first that fails twice in a row or hangs.  A failure is run again
    at once: some of them wait a fixed few seconds for an event (iothreads-create's 5 s) and fail
    on a loaded host whatever the build (shard 2/26 "killed" the leak block.c:3082 that way); one
    that passes the second time is said, and not a kill."""
    done: list[IotestResult] = []
    for base in passing:
        result = run_iotest(check, base.test, iotest_timeout(base.seconds), log)
        if result.status == "fail":
            again = run_iotest(check, base.test, iotest_timeout(base.seconds), log)
            if again.status == "pass":
                result = replace(again, reason=f"failed once ({result.reason}), then passed: not a kill")
            elif again.status == "fail":
                result = replace(again, reason=f"failed twice: {again.reason}")
            else:
                result = again
        done.append(result)
        if result.status in ("fail", "timeout"):
            break
    return done


def iotests_baseline(
    check: Path, tests: Sequence[str], results: Path, say: Callable[[str], None]
) -> list[IotestResult]:
    """The iotests on the unmutated build, every one (``results/iotests-baseline.json``)."""
    started = time.monotonic()
    baseline = [run_iotest(check, t, IOTEST_BASELINE_TIMEOUT_S, results / "iotests-baseline.log") for t in tests]
    (results / "iotests-baseline.json").write_text(json.dumps([asdict(r) for r in baseline], indent=1) + "\n")
    passing, left_out = baseline_split(baseline)
    say(f"mutants: the unmutated build's iotests in {time.monotonic() - started:.0f} s: {len(passing)} pass; "
        + excluded_line(left_out))  # fmt: skip
    return baseline


def baseline_note(results: Path) -> list[str]:
    """The table's line of the iotests left out, from the campaign's ``iotests-baseline.json``."""
    try:
        data = json.loads((results / "iotests-baseline.json").read_text())
    except (OSError, ValueError):
        return []
    return [excluded_line(baseline_split([IotestResult(**r) for r in data])[1])]


SUITE_BASELINE = "suite-baseline.json"  # the tier's verdicts on the unmutated build, per test


def tier_tests(job: Path | None) -> list[dict]:
    """The tests of one tier job's ``results.json`` (none when it left no results)."""
    try:
        return json.loads((job / "results.json").read_text()).get("tests", []) if job else []
    except (OSError, ValueError):
        return []


def worse_than_stock(test: dict, baseline: Mapping[str, str] | None) -> bool:
    """Whether ``test`` (on a mutant) ended worse than on the unmutated build: a FAIL, ERROR or
    timeout where stock did not; or a WARN where stock PASSed.  A known issue's signature in a test
    that never reproduced it is WARN "outside what was measured" (nothing says that QEMU changed);
    here something did: the mutant (blockdev.c:1878 and block-backend.c:2080 abort every qemu-img
    create in ``bdrv_do_drained_end``, KI-5's signature, and survived as 15 WARNs until this)."""
    stock = (baseline or {}).get(test.get("name", ""), "PASS")
    status = test.get("status")
    if status in KILLING:
        return stock not in KILLING
    return status == "WARN" and stock == "PASS"


def suite_baseline(refs: Sequence[str], results: Path, qemu: Path, jobs: int, say: Callable[[str], None]) -> dict:
    """The tier's verdict of each test on the unmutated build (``results/suite-baseline.json``; kept
    and used again while the tier's tests are the same)."""
    path = results / SUITE_BASELINE
    try:
        kept = json.loads(path.read_text())
        if kept.get("refs") == list(refs):
            return kept["verdicts"]
    except (OSError, ValueError, KeyError):
        pass
    job, seconds = runs.run_scenarios(refs, results / "baseline", qemu=qemu, jobs=jobs)
    verdicts = {t["name"]: t.get("status", "") for t in tier_tests(job)}
    path.write_text(json.dumps({"refs": list(refs), "verdicts": verdicts}, indent=1) + "\n")
    bad = sorted(n.split(":")[-1] for n, v in verdicts.items() if v in KILLING)
    say(f"mutants: the unmutated build's tier in {seconds:.0f} s: " + ", ".join(
        f"{sum(v == s for v in verdicts.values())} {s}" for s in sorted(set(verdicts.values())))
        + (f"; failing there, so never a kill: {', '.join(bad)}" if bad else ""))  # fmt: skip
    return verdicts


def judge(mutant: mutants.Mutant, job: Path | None, build_s: float, tier_s: float,
          baseline: Mapping[str, str] | None = None) -> Outcome:  # fmt: skip
    base = {"id": mutant.id, "label": mutant.site.label, "function": mutant.site.function,
            "build_s": round(build_s, 1), "tier_s": round(tier_s, 1)}  # fmt: skip
    tests = tier_tests(job)
    if not tests:
        return Outcome(**base, status=NO_RESULT, detail="the tier left no results.json")
    caught = [t for t in tests if worse_than_stock(t, baseline)]
    if not caught:
        passed = sum(t.get("status") in ("PASS", "WARN") for t in tests)
        return Outcome(**base, status=SURVIVED, detail=f"{passed} of {len(tests)} tests passed or warned")
    first = min(caught, key=lambda t: t.get("actual_time_end") or 0)
    reason = re.sub(r"(?<![\w.])/(?:[^\s/:]+/)+", "", (first.get("fail_reason") or "").splitlines()[0] if
                    first.get("fail_reason") else "")  # paths cut to their last part: the reason fits the table
    detail = f"{first['name'].split(':')[-1]}: {first['status']} {teeth.violation_round(first)}{reason[:300]}"
    return Outcome(**base, status=KILLED, detail=detail, first_kill_s=teeth.first_end_after_start(tests, caught))


def campaign(  # noqa: PLR0913 - what runs, where, and how to say it
    chosen: Sequence[mutants.Mutant], refs: Sequence[str], results: Path, cache: Path,
    *, jobs: int = 1, coverage_json: Path | None = None, run_unreached: bool = False,
    say: Callable[[str], None] = print, preflight: Callable[[Path], object] | None = None,
    iotests: Sequence[str] | None = None,
) -> list[Outcome]:  # fmt: skip
    """Each mutant of ``chosen`` built in the one build dir and the tier ``refs`` run on it (FAILFAST),
    or, given ``iotests``, those of QEMU's iotests that pass on the unmutated build (run first)."""
    results.mkdir(parents=True, exist_ok=True)
    entry_qemu, work = mutant_build(cache, results / "build.log", say)
    entry, run_dir = entry_qemu.parent.parent, cache / "mutants" / "run"
    targets, passing = coverage.BINARIES, []
    check = None
    if iotests is not None:
        targets = coverage.IOTEST_BINARIES
        check = coverage.prepare_iotests(coverage.GcovBuild(entry_qemu, work))
        passing, _left_out = baseline_split(iotests_baseline(check, iotests, results, say))
    lines = None if run_unreached or coverage_json is None else function_counts(coverage_json)
    say("mutants: " + (f"coverage data {coverage_json} skips the functions it never ran" if lines
                       else "no coverage data: every mutant runs"))  # fmt: skip
    stock = None  # the tier on the unmutated build: only when some mutant will run it
    if iotests is None and any(m.id not in mutants.EQUIVALENT and not never_reached(m, lines) for m in chosen):
        relink(work, run_dir, entry, results / "ninja.log", targets)  # the unmutated binaries, for its tier
        if preflight is not None:
            preflight(run_dir / "bin" / "qemu-system-x86_64")
        stock = suite_baseline(refs, results, run_dir / "bin" / "qemu-system-x86_64", jobs, say)
    outcomes: list[Outcome] = []
    for n, mutant in enumerate(chosen, 1):
        base = {"id": mutant.id, "label": mutant.site.label, "function": mutant.site.function}
        if mutant.id in mutants.EQUIVALENT:
            outcome = Outcome(**base, status=EQUIVALENT, detail=mutants.EQUIVALENT[mutant.id])
        elif never_reached(mutant, lines):
            outcome = Outcome(**base, status=UNREACHED, detail="the coverage run never ran it (or its callee)")
        else:
            wait_quiet(run_dir, 60, say)
            source = work / "src" / mutant.file
            original = source.read_text()
            write_file(source, mutant.apply(original))
            started = time.monotonic()
            try:
                failed = relink(work, run_dir, entry, results / "ninja.log", targets)
                build_s = time.monotonic() - started
                if failed:
                    outcome = Outcome(**base, status=BUILD_FAILED, detail=failed, build_s=round(build_s, 1))
                elif check is not None:
                    ran = run_iotests_until_one_fails(check, passing, results / "iotests.log")
                    outcome = judge_iotests(mutant, ran, build_s)
                else:
                    qemu = run_dir / "bin" / "qemu-system-x86_64"
                    job, tier_s = runs.run_scenarios(refs, results / "jobs", failfast=True, qemu=qemu, jobs=jobs)
                    outcome = judge(mutant, job, build_s, tier_s, stock)
            finally:
                write_file(source, original)
        outcomes.append(outcome)
        say(f"mutants: [{n}/{len(chosen)}] {outcome.line()}")
        (results / "mutants.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=1) + "\n")
    relink(work, run_dir, entry, results / "ninja.log", targets)  # the build dir back to the source's binaries
    if check is not None:
        shutil.rmtree(check.parent / "scratch", ignore_errors=True)  # a hung test's images
    return outcomes
