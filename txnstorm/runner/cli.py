"""txnstorm: does a QMP transaction capture one point in time while guests and NBD clients write?

Runs the scenario tests (real QEMU, real guest, fio write storms, QMP transactions, qemu-img compare and
stamp oracles) against the QEMU you name with QEMU=/path/to/qemu-system-x86_64 or a build dir, and helps
you act on what they find: the report, the replay line, git bisect.  `make help` shows the make targets
and settings; every command below runs from the checkout as scripts/txnstorm COMMAND.

    txnstorm run [--tags T] [--test NAME]... [--seed N] [--failfast]   run scenario tests, write the report
    txnstorm list [--tags T]   every scenario test with its tags and typical time
    txnstorm doctor        check the host, one line per item with what to do
    txnstorm replay DIR    print (or --run) the command replaying each failure on the QEMU that failed
    txnstorm report [DIR]  write report.html (verdicts, known issues, timelines) into a job dir
    txnstorm nightly --duration 2h [--tags ...] [--qemu Q]...   iterate the suite until the budget ends
    txnstorm teeth [--tags quick] [--versions 10.2.2]   fault-injected builds vs a tier
    txnstorm validate --series DIR|MBOX --base 10.2.2|TREE [--tags T] [--runs N]   a patch series vs its base
    txnstorm coverage [--tags quick] [--iotests [LIST]]   the tier (or QEMU's iotests) on a gcov build: the map
    txnstorm mutants [--shard i/n] [--limit N] [--pick ID]... [--list]   drain/transaction mutants vs the tier
    txnstorm preflight     check QEMU, qemu-img, guest cache and accel (--build-guest: build the guest)
    txnstorm guest         build the guest if missing or corrupt, print its dir
    txnstorm accel [--reprobe]   the accelerator ACCEL=auto chooses (and when it was probed)
    txnstorm boot [-n N]   boot the guest N times and print boot-to-SSH seconds
    txnstorm sweep         remove private temp dirs of runs that died
    txnstorm tags TAGS     check Avocado tag filters against the suite's tags
    txnstorm select --tags=T --shard=i/N [--test NAME]   the scenario tests a run would take
    txnstorm bisect-answer JOB [--issue KI-n]   0 good, 1 bad, 125 skip (git bisect run)
    txnstorm known-issues [--write]   docs/known-issues.md, generated from known-issues.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from txnstorm import REPO
from txnstorm.errors import UserError
from txnstorm.host import cachedir, sut
from txnstorm.host.scratch import private_dir, sweep_stale
from txnstorm.runner import entry, inputs, junit, report, runs
from txnstorm.settings import MUTANTS_PEERS, Settings
from txnstorm.vm import testbed
from txnstorm.vm.topology import TWO_DISKS_ONE_IOTHREAD


def _say(msg: str) -> None:
    print(f"txnstorm: {msg}", flush=True)


def cmd_guest(args: argparse.Namespace) -> int:
    image = testbed.guest(args.settings, recipe=args.recipe, allow_build=not args.verify_only, say=_say)
    _say(f"guest '{args.recipe}' ok: {image.directory}")
    return 0


def cmd_preflight(args: argparse.Namespace, qemu: Path | None = None) -> int:
    """The QEMU, the guest, the accelerator and the capabilities; ``qemu``: a build of this command's
    own (validate's series) instead of the environment's."""
    settings = args.settings
    if qemu is not None:
        settings = settings.given(qemu=str(qemu), qemu_img=str(qemu.with_name("qemu-img")), by="QEMU",
                                  img_by="QEMU_IMG")  # fmt: skip
    testbed.set_up(settings, say=_say, allow_build=args.build_guest, recipe=args.recipe)
    return 0


def cmd_accel(args: argparse.Namespace) -> int:
    testbed.set_up(args.settings, say=_say, needs_caps=False, recipe=args.recipe, reprobe=args.reprobe)
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    from txnstorm.host.images import QemuImg
    from txnstorm.vm.boot import booted
    from txnstorm.vm.machine import Machine

    bed = testbed.set_up(args.settings, say=_say, needs_caps=False, recipe=args.recipe)
    assert bed.platform is not None and bed.guest is not None  # a guest was asked for
    topology = TWO_DISKS_ONE_IOTHREAD
    times = []
    with private_dir("boot") as tmp:
        img = QemuImg(bed.sut.qemu_img)
        images = {d.name: img.create(tmp / f"{d.name}.qcow2", d.size) for d in topology.disks}
        for i in range(args.count):
            vm = Machine(bed.platform, topology, tmp / f"boot{i}", images)
            with booted(vm, bed.guest) as b:
                times.append(b.boot_seconds)
                _say(f"boot {i + 1}: {b.boot_seconds:.2f} s to SSH")
    _say(f"boot-to-SSH ({bed.platform.accel}): median {statistics.median(times):.2f} s over {len(times)}")
    return 0


WARN = "WARN"  # a doctor line that is no fault but limits what a run can show


def _doctor_checks(settings: Settings) -> list[tuple[str, bool | str, str]]:
    """(item, ok (True, False or WARN), detail or what to do) for each thing a run needs."""
    checks: list[tuple[str, bool | str, str]] = []
    system = None
    try:
        system = testbed.set_up(settings, needs_guest=False, needs_caps=False).sut
        checks.append(("QEMU", True, system.describe()))
    except UserError as exc:
        checks.append(("QEMU", False, str(exc)))
    image = None
    try:
        image = testbed.guest(settings)
        checks.append(("guest", True, f"{image.directory} verified against its sha256 manifest"))
    except UserError as exc:
        checks.append(("guest", False, f"{exc} (make guest)"))
    if system and image:  # both there: the whole test bed, as a run sets it up
        bed = testbed.set_up(settings)
        assert bed.accel is not None and bed.caps is not None
        checks.append(("accel", True, f"{bed.accel.accel} ({bed.accel.reason})"))
        if bed.accel.accel == "tcg":
            checks.append(("accel", WARN, runs.TCG_NOTE))
        checks.append(("capabilities", True, bed.caps.describe()))
    setup = (REPO / "scripts" / "setup").read_text()
    wanted = setup.split("packages=(", 1)[1].split(")", 1)[0].split()
    missing = [
        p for p in wanted
        if "ok installed" not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True, check=False
        ).stdout
    ]  # fmt: skip
    checks.append(("packages", not missing, f"missing: {' '.join(missing)} (make setup)" if missing else "all present"))
    try:
        root = cachedir.writable_cache_root(settings.cache_dir)
    except UserError as exc:
        checks.append(("cache", False, str(exc)))
        return checks
    free, need = shutil.disk_usage(root).free / 2**30, inputs.MIN_FREE_GIB
    checks.append(("disk", free >= need, f"{free:.1f} GiB free at {root}" + ("" if free >= need else
                                                                             f" (need {need:.0f} GiB)")))
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = _doctor_checks(args.settings)
    for item, ok, detail in checks:
        print(f"{ok if ok == WARN else 'ok' if ok else 'BAD':4} {item:13} {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    for path in sweep_stale():
        _say(f"removed stale {path}")
    return 0


TESTS_DIR = REPO / "tests"


def _scenario_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.py"))


def cmd_tags(args: argparse.Namespace) -> int:
    print(" ".join(f"--filter-by-tags={f}" for f in runs.check_tags(args.tags, _scenario_files())))
    return 0


def _selected(tags: str, names: list[str], shard: str) -> list[str]:
    """The scenario tests of a run: tag filters, then the tests TEST names among them, then one shard.
    Every mistake is one line (UserError) before anything slow."""
    filters = runs.check_tags(tags, _scenario_files())
    index, count = runs.parse_shard(shard, "--shard=")
    avocado = runs.avocado_binary()
    refs = runs.avocado_list(avocado, filters, runs.scenario_refs(), cwd=TESTS_DIR.parent)
    if not refs:
        raise UserError(f"TAGS={tags!r} selects no test; scripts/txnstorm list shows every test and its tags")
    words = [w for name in names for w in name.replace(",", " ").split()]
    if words:
        everything = runs.avocado_list(avocado, [], runs.scenario_refs(), cwd=TESTS_DIR.parent) if filters else refs
        refs = runs.pick_tests(refs, words, everything)
    return runs.shard(refs, index, count)


def cmd_select(args: argparse.Namespace) -> int:
    """The scenario tests a make target runs: tag filters, TEST names, then one shard."""
    print(" ".join(_selected(args.tags, args.test, args.shard)))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Every scenario test (of --tags) with its tags and typical time: from this checkout's results/
    where it has run here, else the figure measured on the reference host (TCG, 2 cores)."""
    selected = set(_selected(args.tags, [], "1/1")) if args.tags else None
    seen, shipped = runs.typical_seconds(REPO / "results"), runs.shipped_typical_seconds()
    rows = [(ref, tags) for ref, tags in runs.scenario_tags(_scenario_files()) if selected is None or ref in selected]
    for ref, tags in rows:
        if ref in seen:
            typical = f"{seen[ref]:5.0f} s"
        elif ref in shipped:
            typical = f"{shipped[ref]:5.0f} s*"
        else:
            typical = "    - "
        print(f"{typical:8} {ref}  [{','.join(tags)}]")
    print(f"{runs.tier_time([ref for ref, _ in rows], shipped)} (two side by side); typical time: median of "
          "this checkout's results/, * measured on a 2-core TCG host (QEMU 7.2.22), - not measured")  # fmt: skip
    return 0


def _side_by_side(jobs: int | None, tests: int | None = None) -> int:
    """``JOBS`` as ``runs.parse_jobs`` read it, or auto's (None): one test per core, said; never
    more than the run's ``tests`` (a one-test run is not two side by side)."""
    if jobs is not None:
        return jobs
    cores = os.cpu_count() or 1
    chosen = min(runs.jobs_for(cores), tests) if tests else runs.jobs_for(cores)
    fewer = f"; {tests} test(s) to run" if chosen < runs.jobs_for(cores) else ""
    _say(f"jobs: {chosen} test(s) side by side (JOBS=auto: one per core, {cores} cores{fewer})")
    return chosen


def cmd_run(args: argparse.Namespace) -> int:
    """The scenario tests of --tags/--test/--shard against the QEMU under test: preflight (QEMU, guest,
    accelerator), one Avocado job, the report; the exit status says what the run means."""
    if args.seed and not args.seed.isdigit():
        raise UserError(f"--seed={args.seed} is not a whole number; use the seed a report printed")
    jobs = runs.parse_jobs(args.jobs, "JOBS")
    refs = _selected(args.tags, args.test, args.shard)  # bad input before anything slow
    if not refs:  # more shards than tests: this one has nothing to do, which is no failure
        _say(f"shard {args.shard} selects no test (fewer tests than shards); nothing to run: exit 0")
        return 0
    args.recipe, args.build_guest = "tiny", True
    cmd_preflight(args)
    jobs = _side_by_side(jobs, len(refs))
    latest, seconds = runs.run_scenarios(
        refs, Path(args.results_dir).resolve(), seed=args.seed, failfast=args.failfast, jobs=jobs,
        about={"tags": args.tags, "tests": args.test, "shard": args.shard, "failfast": args.failfast, "jobs": jobs},
    )  # fmt: skip
    if latest is None:
        _say(f"the Avocado job wrote no results in {args.results_dir} (the suite's trouble)")
        return runs.EXIT_SUITE
    junit.mark_known_issues(latest)
    page = report.render_job(latest)
    return _said_the_run(latest, page, seconds)


def _said_the_run(job_dir: Path, page: Path, seconds: float) -> int:
    """The closing lines of a run: totals, each failure's replay line, the TCG note, the exit status."""
    summary = runs.job_summary(job_dir)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.statuses.items()))
    not_run = runs.not_run(job_dir)
    counts += f", {not_run} not run (FAILFAST stopped the job)" if not_run else ""
    _say(f"{counts} in {seconds:.0f} s; report: {_near(page)}")
    for replay in runs.replays(job_dir):
        _say(f"{replay.status} {replay.test}\n          replay: {replay.command}")
    if "tcg" in runs.accels_of(job_dir):
        _say(f"note: {runs.TCG_NOTE}")
    status = runs.job_exit_status(summary.statuses)
    _say(f"exit {status}: {dict(runs.EXIT_STATUSES)[status]}")
    return status


def _near(path: Path) -> str:
    """A path relative to the working dir when it is below it (what a user pastes)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_replay(args: argparse.Namespace) -> int:
    found = runs.replays(Path(args.results), only_failed=not args.all)
    if not found:
        _say(f"no failed test in {args.results}")
        return 0
    for replay in found:
        print(f"{replay.status:6} {replay.test}\n       {replay.command}")
        if args.run:
            subprocess.run(replay.command, shell=True, check=False)  # noqa: S602 - our own make line
    return 0


def cmd_bisect_answer(args: argparse.Namespace) -> int:
    issues = [i for i in args.issue.replace(",", " ").split() if i]
    answer = runs.bisect_answer(Path(args.job), issues)
    print(f"{answer.exit_status} {answer.why}")
    return answer.exit_status


def cmd_report(args: argparse.Namespace) -> int:
    jobs, versions = report.nightly_jobs(Path(args.results))
    if jobs:  # a nightly's results dir: every job's page, then the grid
        for job in jobs:
            report.render_job(Path(job["job_dir"]))
        _say(f"nightly page: {report.render_nightly(Path(args.results), jobs, versions)}")
        return 0
    marked = junit.mark_known_issues(Path(args.results))
    if marked:
        _say(f"results.xml: {marked} known issue(s) marked for junit views (skipped, with the verdict)")
    _say(f"report: {report.render_job(Path(args.results))}")
    return 0


def _nightly_qemus(args: argparse.Namespace) -> list[sut.SystemUnderTest]:
    """The QEMUs a nightly compares: ``--qemus`` (make's NIGHTLY_QEMUS) exactly, else the one under
    test (QEMU, or Debian's) plus every QEMU built by `make qemu` unless --no-built."""
    words = (getattr(args, "qemus", "") or "").split()
    if words:
        return runs.nightly_qemus(words, args.settings)
    wanted = [q for q in args.qemu if q] or [args.settings.qemu or ""]
    if not args.no_built:  # newest build first: an older build of the same version (other flags) is skipped
        wanted += runs.built_qemus(args.settings.cache_dir)
    return runs.one_per_version(wanted)


def _nightly_progress(version: str, iteration: int, deadline: float) -> Callable[[runs.TestLine], None]:
    """One line per test as it ends, with when this job should end (the mean time of its tests so far)
    and when the budget does."""
    done: list[float] = []

    def said(line: runs.TestLine) -> None:
        done.append(line.seconds)
        left = (line.total - line.index) * sum(done) / len(done)
        eta = time.strftime("%H:%M", time.localtime(time.time() + min(left, max(0.0, deadline - time.monotonic()))))
        budget = time.strftime("%H:%M", time.localtime(time.time() + max(0.0, deadline - time.monotonic())))
        _say(f"QEMU {version} #{iteration} ({line.index}/{line.total}) {line.status} {line.seconds:.0f} s "
             f"{line.test}; this pass ends ~{eta}, the budget at {budget}")  # fmt: skip

    return said


def cmd_known_issues(args: argparse.Namespace) -> int:
    """docs/known-issues.md from known-issues.json: printed, or written with --write."""
    from txnstorm.oracles import known_issues
    from txnstorm.runner import known_issues_doc

    page = known_issues_doc.markdown(known_issues.load())
    if args.write:
        known_issues_doc.PAGE.write_text(page)
        _say(f"wrote {_near(known_issues_doc.PAGE)}")
    else:
        print(page, end="")
    return 0


def cmd_nightly(args: argparse.Namespace) -> int:
    budget = runs.parse_duration(args.duration)
    filters = runs.check_tags(args.tags, _scenario_files()) if args.tags else []
    systems = _nightly_qemus(args)
    if args.preflight:
        args.build_guest, args.recipe = True, "tiny"
        cmd_preflight(args)
    table: dict[str, dict[str, dict[str, int]]] = {}  # test -> qemu version -> status -> count
    checks, iterations, failures = 0, 0, []
    jobs: list[dict[str, object]] = []  # per job: iteration, QEMU, dir, verdicts (the nightly page's grid)
    for job in runs.budgeted_jobs(budget, len(systems), time.monotonic):
        iterations, system = job.iteration, systems[job.index]
        results_dir = Path(args.results_dir).resolve() / f"nightly-{system.version}"
        _say(f"nightly iteration {iterations}, QEMU {system.version}, {job.timeout_s / 60:.0f} min left")
        progress = _nightly_progress(system.version, iterations, time.monotonic() + job.timeout_s)
        latest = runs.run_avocado_job(
            system.qemu, system.qemu_img, filters, results_dir, job.timeout_s, on_test=progress
        )
        junit.mark_known_issues(latest)
        report.render_job(latest)
        summary = runs.job_summary(latest)
        jobs.append({"iteration": job.iteration, "qemu": system.version, "job_dir": str(latest.resolve()),
                     "tests": report.job_verdicts(latest)})  # fmt: skip
        checks += summary.checks
        for test, status in summary.tests.items():
            cell = table.setdefault(test, {}).setdefault(system.version, {})
            cell[status] = cell.get(status, 0) + 1
        # A test cut short by the budget's end is no finding about QEMU.
        failures += [f"QEMU={system.qemu} {r.command}" for r in runs.replays(latest) if r.status != "INTERRUPTED"]
    versions = [s.version for s in systems]
    print(runs.side_by_side(table, versions))
    (Path(args.results_dir) / "nightly-summary.json").write_text(
        json.dumps(
            {"iterations": iterations, "qemus": versions, "checks": checks, "tests": table, "jobs": jobs}, indent=1
        )  # fmt: skip
    )
    page = report.render_nightly(Path(args.results_dir), jobs, versions)
    _say(
        f"nightly: {iterations} iterations in {budget / 60:.0f} min over QEMU {', '.join(versions)}, "
        f"{checks} oracle checks, {len(failures)} failures; page: {page}"
    )
    for command in failures:
        print(f"  replay: {command}")
    return 1 if failures else 0


def cmd_teeth(args: argparse.Namespace) -> int:
    from txnstorm.runner import teeth

    tags = runs.check_tags(args.tags, _scenario_files(), "TEETH_TAGS")
    faults = teeth.chosen_faults(args.faults.split(), teeth.load_faults())  # a wrong name: its one line first
    jobs = _side_by_side(runs.parse_jobs(args.jobs, "JOBS"))
    results = Path(args.results_dir).resolve() / "teeth"
    versions = [v for v in args.versions.split() if v]
    rows = teeth.teeth(tags, results, versions, say=_say, jobs=jobs, cache=args.settings.cache_dir, faults=faults,
                       peers=args.peer, failfast=args.failfast)  # fmt: skip
    print(f"{'fault':32} {'QEMU':10} {'outcome':24} {'tier':>8} {'1st FAIL':>8}  detail")
    for row in rows:
        print(row.line())
    bad = [r for r in rows if r.outcome in ("missed", "NOT CLEAN", "build failed", "no result")]
    _say(f"teeth: {len(rows)} rows, {len(bad)} missed or unclean; results in {results}")
    return 1 if bad else 0


def cmd_coverage(args: argparse.Namespace) -> int:
    """The tier (or, with --iotests, QEMU's iotests of the area) on the gcov build, and the map."""
    from txnstorm.runner import coverage, peer

    cache = args.settings.cache_dir
    tree = coverage.source_tree(cache)  # bad input before anything slow
    results = Path(args.results_dir).resolve() / "coverage"
    if args.iotests is not None:
        tests = args.iotests.split() or list(peer.IOTESTS)
        coverage.check_iotests(tree, tests)

        def run(build: coverage.GcovBuild, out: Path) -> tuple[float, str]:
            return coverage.run_iotests(build, tests, out / "iotests.log")

        name = "iotests"
    else:
        refs = _selected(args.tags, [], "1/1")
        jobs = _side_by_side(runs.parse_jobs(args.jobs, "JOBS"), len(refs))
        args.recipe, args.build_guest = "tiny", True

        def run(build: coverage.GcovBuild, out: Path) -> tuple[float, str]:
            cmd_preflight(args, build.qemu)
            return coverage.run_tier(build, refs, out, jobs)

        name = coverage.results_name(runs.check_tags(args.tags, _scenario_files()))
    coverage.measure(name, results, cache, run, say=_say)
    return 0


def cmd_mutants(args: argparse.Namespace) -> int:
    """Each chosen mutant built in the one kept build dir, the tier (or, with --peer iotests, QEMU's
    iotests of the area) run on it, stopping at the first failure; the table."""
    from txnstorm.runner import coverage, mutants, mutants_run, peer

    cache = args.settings.cache_dir
    shard = mutants.parse_shard(args.shard)
    limit = int(args.limit) if args.limit else None
    tree = coverage.source_tree(cache)
    every = mutants.generate(tree)
    chosen = mutants.select(every, pick=[w for p in args.pick for w in p.split()], shard=shard, limit=limit)
    for stale in mutants.stale_equivalents(every):
        _say(f"mutants: note: {stale} is listed equivalent (mutants.EQUIVALENT) but this source has no such mutant")
    if args.list:
        for mutant in chosen:
            equivalent = "  (equivalent)" if mutant.id in mutants.EQUIVALENT else ""
            print(f"{mutant.id:62} {mutant.site.label}  in {mutant.site.function}{equivalent}")
        _say(f"{len(chosen)} of {len(every)} mutants")
        return 0
    iotests, refs, jobs, preflight = None, [], 1, None
    if args.peer == "iotests":
        iotests = list(peer.IOTESTS)
        coverage.check_iotests(tree, iotests)
        name, how = "iotests", f"QEMU's {len(iotests)} iotests of the area, the first failure ending each"
    else:
        refs = _selected(args.tags, [], "1/1")
        jobs = _side_by_side(runs.parse_jobs(args.jobs, "JOBS"), len(refs))
        name = coverage.results_name(runs.check_tags(args.tags, _scenario_files()))
        how = f"the {name} tier with FAILFAST"
        args.recipe, args.build_guest = "tiny", True

        def preflight(q: Path) -> object:
            return cmd_preflight(args, q)

    if args.sum:
        outcomes, read = mutants_run.summed(Path(args.results_dir).resolve() / "mutants", name)
        if not read:
            raise UserError(f"MUTANTS_SUM=1: no results/mutants/{name}-shard*/mutants.json yet: run make mutants first")
        text = mutants_run.table(outcomes, name, [f"{len(outcomes)} of {len(every)} mutants, from " + ", ".join(read)])
        (Path(args.results_dir).resolve() / "mutants" / f"{name}-sum.txt").write_text(text)
        print(text, end="")
        return 0
    results = Path(args.results_dir).resolve() / "mutants" / f"{name}-shard{shard[0]}of{shard[1]}"
    _say(f"mutants: {len(chosen)} of {len(every)} (shard {shard[0]}/{shard[1]}), {how}")
    outcomes = mutants_run.campaign(
        chosen, refs, results, cache, jobs=jobs, coverage_json=Path(args.results_dir).resolve() / "coverage" / name
        / "coverage.json", run_unreached=args.run_unreached, say=_say, preflight=preflight, iotests=iotests,
    )  # fmt: skip
    text = mutants_run.table(outcomes, name, mutants_run.baseline_note(results) if iotests is not None else ())
    (results / "table.txt").write_text(text)
    print(text, end="")
    _say(f"mutants: {results / 'table.txt'}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """A patch series judged against its base: every input first (the series applied), then the
    builds, then the tier RUNS times on each side; exit 1 on a regression."""
    from txnstorm.runner import validate

    if args.judge:
        outcome = validate.judge_again(Path(args.judge), say=_say)
        _say(f"page: {_near(Path(args.judge) / 'validate.html')}")
        return validate.EXIT_REGRESSION if outcome.regressions else 0
    if not args.series:
        raise UserError("name the series: SERIES=DIR (git format-patch files), SERIES=FILE.mbox (b4 am) or a patch")
    if args.seed and not args.seed.isdigit():
        raise UserError(f"SEED={args.seed} is not a whole number")
    validate.check_inputs(args.series, args.base, args.runs, args.settings.cache_dir)  # bad input before the test list
    refs = _selected(args.tags, args.test, "1/1")
    stamp = time.strftime("%Y-%m-%dT%H.%M.%S")
    results = Path(args.results_dir).resolve() / f"validate-{stamp}"
    args.recipe, args.build_guest = "tiny", True
    outcome = validate.validate(
        args.series, args.base, refs, args.runs, results, seed=int(args.seed) if args.seed else None,
        say=_say, preflight=lambda qemu: cmd_preflight(args, qemu), cache=args.settings.cache_dir,
    )  # fmt: skip
    _say(f"page: {_near(results / 'validate.html')}")
    return validate.EXIT_REGRESSION if outcome.regressions else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="txnstorm", description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status (of every command; `make` reports any of them as its own 2):\n"
        + runs.exit_statuses_table(),
    )  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="run scenario tests against the QEMU under test, write the report",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="exit status:\n" + runs.exit_statuses_table())  # fmt: skip
    r.add_argument("--tags", default="", help="Avocado tag filters: comma = AND, space = OR, -tag = NOT")
    r.add_argument("--test", action="append", default=[],
                   help="a test by id or a piece of one (test_multiqueue, Rollback); repeatable")  # fmt: skip
    r.add_argument("--shard", default="1/1", help="i/N: shard i of N (sorted, round-robin)")
    r.add_argument("--seed", default="", help="every test with this seed (a report prints it)")
    r.add_argument("--failfast", action="store_true", help="stop at the first test that does not pass")
    r.add_argument("--jobs", default="auto", help="tests side by side: a number, or auto (from cores and accel)")
    r.add_argument("--results-dir", default="results")
    r.set_defaults(func=cmd_run)
    ls = sub.add_parser("list", help="every scenario test with its tags and typical time")
    ls.add_argument("--tags", default="", help="only the tests of these tag filters")
    ls.set_defaults(func=cmd_list)
    g = sub.add_parser("guest", help="build or verify the cached guest")
    g.add_argument("--recipe", default="tiny")
    g.add_argument("--verify-only", action="store_true", help="fail instead of building")
    g.set_defaults(func=cmd_guest)
    pf = sub.add_parser("preflight", help="check QEMU, qemu-img, guest and accelerator")
    pf.add_argument("--recipe", default="tiny")
    pf.add_argument("--build-guest", action="store_true", help="build the guest if missing or corrupt")
    pf.set_defaults(func=cmd_preflight)
    ac = sub.add_parser("accel", help="the accelerator ACCEL=auto chooses, and when it was probed")
    ac.add_argument("--recipe", default="tiny")
    ac.add_argument("--reprobe", action="store_true", help="forget the kept KVM probe verdict and probe again")
    ac.set_defaults(func=cmd_accel)
    b = sub.add_parser("boot", help="measure boot-to-SSH")
    b.add_argument("-n", "--count", type=int, default=1)
    b.add_argument("--recipe", default="tiny")
    b.set_defaults(func=cmd_boot)
    d = sub.add_parser("doctor", help="check the host: QEMU, guest, accel, packages, disk")
    d.set_defaults(func=cmd_doctor)
    s = sub.add_parser("sweep", help="remove temp dirs of dead runs")
    s.set_defaults(func=cmd_sweep)
    tg = sub.add_parser("tags", help="check tag filters, print avocado options")
    tg.add_argument("tags", help="e.g. quick, 'quick,-control nbd' or -nightly")
    tg.set_defaults(func=cmd_tags)
    se = sub.add_parser("select", help="the scenario tests of TAGS (shard i of N), from `avocado list --json`")
    se.add_argument("--tags", default="", help="Avocado tag filters: comma = AND, space = OR, -tag = NOT")
    se.add_argument("--shard", default="1/1", help="i/N: shard i of N (sorted, round-robin)")
    se.add_argument("--test", action="append", default=[], help="a test by id or a piece of one; repeatable")
    se.set_defaults(func=cmd_select)
    rp = sub.add_parser("replay", help="replay commands for the failures of a results dir")
    rp.add_argument("results", nargs="?", default="results/latest")
    rp.add_argument("--run", action="store_true", help="run them too")
    rp.add_argument("--all", action="store_true", help="every test, not only failures")
    rp.set_defaults(func=cmd_replay)
    ba = sub.add_parser("bisect-answer", help="0 good, 1 bad, 125 skip for one test's job dir (git bisect run)")
    ba.add_argument("job", help="an Avocado job results dir holding one test")
    ba.add_argument("--issue", default="", help="known issue(s) being bisected, e.g. KI-5 (default: the test's own)")
    ba.set_defaults(func=cmd_bisect_answer)
    rt = sub.add_parser("report", help="write report.html into a job results dir (nightly.html for a nightly's)")
    rt.add_argument("results", nargs="?", default="results/latest")
    rt.set_defaults(func=cmd_report)
    te = sub.add_parser("teeth", help="fault-injected QEMU builds: does the tier catch each bug class?")
    te.add_argument("--tags", default="quick", help="the tier to run against each build (Avocado tag filters)")
    te.add_argument("--versions", default="", help="QEMU versions to inject into (default: every make qemu source)")
    te.add_argument("--jobs", default="auto", help="tests of each tier side by side: a number, or auto (one per core)")
    te.add_argument("--faults", default="", help="classes, real, or teeth/ folder names (default: every fault)")
    te.add_argument("--peer", action="store_true", help="QEMU's own iotests of the area on every build too")
    te.add_argument("--failfast", action="store_true", help="a fault's tier stops at its first FAIL (stock: whole)")
    te.add_argument("--results-dir", default="results")
    te.set_defaults(func=cmd_teeth)
    va = sub.add_parser("validate", help="a patch series vs its base: both built, the tier N times each, verdicts")
    va.add_argument("--series", default="",
                    help="a dir of git format-patch files, an mbox (b4 am), a patch, or REV..REV of --base's checkout")
    va.add_argument("--base", default="", help="a version make qemu built (10.2.2) or a QEMU source tree")
    va.add_argument("--tags", default="quick", help="the tier (Avocado tag filters)")
    va.add_argument("--test", action="append", default=[], help="only these tests (an id or a piece of one)")
    va.add_argument("--runs", default="3", help="runs per side")
    va.add_argument("--seed", default="", help="the seed the runs' seeds come from")
    va.add_argument("--results-dir", default="results")
    va.add_argument("--judge", default="",
                    help="judge a finished validation's runs again (its results dir); nothing runs")  # fmt: skip
    va.set_defaults(func=cmd_validate)
    co = sub.add_parser("coverage", help="the tier (or QEMU's iotests) on a gcov build: what it never reaches")
    co.add_argument("--tags", default="quick", help="the tier (Avocado tag filters)")
    co.add_argument("--iotests", nargs="?", const="", default=None,
                    help="QEMU's iotests instead of the tier: these (default: the block layer's)")  # fmt: skip
    co.add_argument("--jobs", default="auto", help="tests side by side: a number, or auto (one per core)")
    co.add_argument("--results-dir", default="results")
    co.set_defaults(func=cmd_coverage)
    mu = sub.add_parser("mutants", help="drain and transaction mutants of QEMU's source vs the tier (FAILFAST)")
    mu.add_argument("--tags", default="quick", help="the tier (Avocado tag filters)")
    mu.add_argument("--shard", default="1/1", help="i/n: every n-th mutant from the i-th")
    mu.add_argument("--limit", default="", help="the first N mutants (after --pick and --shard)")
    mu.add_argument("--pick", action="append", default=[], help="mutants whose id has this (repeatable)")
    mu.add_argument("--list", action="store_true", help="list the chosen mutants; build and run nothing")
    mu.add_argument("--sum", action="store_true", help="one table of every shard's results so far; run nothing")
    mu.add_argument("--run-unreached", action="store_true", help="run mutants make coverage never reached too")
    mu.add_argument("--peer", choices=MUTANTS_PEERS, default="suite",
                    help="who judges the mutants: the suite's tier, or QEMU's iotests of the area")  # fmt: skip
    mu.add_argument("--jobs", default="auto", help="tests side by side: a number, or auto (one per core)")
    mu.add_argument("--results-dir", default="results")
    mu.set_defaults(func=cmd_mutants)
    ki = sub.add_parser("known-issues", help="docs/known-issues.md from known-issues.json (--write: update it)")
    ki.add_argument("--write", action="store_true")
    ki.set_defaults(func=cmd_known_issues)
    nt = sub.add_parser("nightly", help="iterate the suite until the time budget ends")
    nt.add_argument("--duration", required=True)
    nt.add_argument("--tags", default="")
    nt.add_argument("--results-dir", default="results")
    nt.add_argument("--preflight", action="store_true", help="check QEMU, guest and accel first")
    nt.add_argument("--qemu", action="append", default=[], help="a QEMU binary or build dir (repeatable)")
    nt.add_argument("--no-built", action="store_true", help="leave out the QEMUs built by `make qemu`")
    nt.add_argument("--qemus", default="", help="exactly these QEMUs: versions (7.2.22 10.2.2), binaries or build dirs")
    nt.set_defaults(func=cmd_nightly)
    return p


CHECKOUT_MARKERS = ("guests/tiny/build.sh", "known-issues.json", "scripts/setup", "tests")


def require_checkout() -> None:
    """txnstorm runs from its git checkout; an installed copy of the package
    alone has no guest recipe, tests or known issues."""
    missing = [m for m in CHECKOUT_MARKERS if not (REPO / m).exists()]
    if missing:
        raise UserError(
            f"txnstorm runs from its git checkout, not as an installed package ({REPO} has no {missing[0]}); "
            "clone the repository and run scripts/txnstorm or make there"
        )


def _leading_not_tags(argv: list[str]) -> list[str]:
    """``tags -nightly``: argparse would read ``-nightly`` as an option; a tag filter it is."""
    if len(argv) >= 2 and argv[0] == "tags" and argv[1].startswith("-") and argv[1] not in ("-h", "--help"):
        return [argv[0], "--", *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(_leading_not_tags(sys.argv[1:] if argv is None else argv))

    def command(settings: Settings) -> int:
        require_checkout()
        args.settings = settings  # an empty QEMU (or any setting) is an error, not its default
        if getattr(args, "results_dir", ""):  # a read-only or full disk: bad input now, not a traceback later
            inputs.host_room(Path(args.results_dir).resolve(), "results dir",
                             "give --results-dir a dir you can write, on a disk with room")  # fmt: skip
        return args.func(args)

    return entry.run(command)


if __name__ == "__main__":
    sys.exit(main())
