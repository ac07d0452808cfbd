"""The one Avocado base class of every scenario test, ``TxnstormTest``.

It resolves the QEMU under test (``-p qemu=`` or ``QEMU``), the verified
guest, the accelerator (``-p accel=`` or ``ACCEL``, default auto), and gives
each test a scratch dir for images inside its log dir: kept when the test
does not PASS (the evidence), removed when it does.  What differs between tests
is a value, not a subclass: ``NEEDS_GUEST``, ``NEEDS_DAEMON`` (qemu-storage-daemon),
``ISSUE`` (a known issue's reproducer), and the storm a story is given
(``storm``: a guest; ``daemon_storm``: NBD clients on the daemon; ``guest_on_daemon_storm``).
A test class inherits ``TxnstormTest`` and nothing else of the project's.

Machines live inside the test method (``with self.boot(...)``): Avocado runs
``tearDown`` in another thread with another event loop, so tearDown only
kills leftovers by PID.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from avocado import Test
from avocado.core.exceptions import (
    TestAbortError,
    TestCancel,
    TestFail,
    TestInterrupt,
    TestSetupFail,
    TestSkipError,
    TestWarn,
)

from txnstorm.errors import DeadlineExceeded, QemuDied, QemuFailure, QemuHung, UserError
from txnstorm.host.images import QemuImg
from txnstorm.host.scratch import sweep_stale
from txnstorm.oracles import known_issues
from txnstorm.scenario.daemon_storm import daemon_storm, nbd_witnesses
from txnstorm.scenario.guest_on_daemon import guest_on_daemon_storm
from txnstorm.scenario.rounds import Finding, check_control
from txnstorm.scenario.story import Storm, Workspace, every_round_fired, guest_storm, rounds_of
from txnstorm.scenario.writers import Witnesses
from txnstorm.settings import Settings
from txnstorm.transactions.plans import PLANS, PlanKind, action_types
from txnstorm.vm import caps, storage_daemon, testbed
from txnstorm.vm.boot import Booted, booted
from txnstorm.vm.boot_states import BootStates
from txnstorm.vm.machine import Machine
from txnstorm.vm.qemu_process import QemuProcess
from txnstorm.vm.storage_daemon import StorageDaemon
from txnstorm.vm.topology import Topology
from txnstorm.vm.write_counters import wait_until_writing


def known_to_flake(reason: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a test that fails now and then for a known, not yet
    characterised reason (as QEMU's ``skipFlakyTest`` names its bug).  The
    test's docstring carries the ``flaky`` tag too (Avocado reads tags
    statically), which ``make ci`` leaves out; when it fails, the reason
    line says what is known."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method.known_to_flake = reason  # type: ignore[attr-defined]
        return method

    return mark


# Avocado's outcomes that are not an ERROR: the rule of deaths leaves them as they are
OUTCOMES = (TestWarn, TestCancel, TestSkipError, TestInterrupt, TestSetupFail, TestAbortError)


def qemu_failures_fail(method: Callable[..., Any]) -> Callable[..., Any]:
    """A test method whose QEMU under test failed ends as FAIL of that QEMU with the reason line,
    or as WARN "known issue KI-n, still reproduces" when the reason matches a listed issue on a
    version it affects (a stall's evidence, a crash's assertion).  Failed means: a
    ``QemuFailure`` was raised (crash, hang, stalled device, refused command), or, whatever else
    went wrong, a QEMU process the test started died, ended unasked or stopped answering
    (``TxnstormTest.death_of_a_qemu``: the one rule at the end of every test, so a death that
    SSH, an NBD client or fio noticed first is still QEMU's FAIL, with that channel's error kept
    as evidence).  Only a test whose QEMUs are alive and well ends in the suite's ERROR."""
    if getattr(method, "qemu_failures_fail", False):
        return method

    flaky = getattr(method, "known_to_flake", None)
    known = f" (known to flake: {flaky})" if flaky else ""

    @functools.wraps(method)
    def run(self: TxnstormTest, *args: Any, **kwargs: Any) -> Any:
        if (failed := getattr(self, "failed_in_setup", None)) is not None:
            self.qemu_failed(failed, known)
        try:
            result = method(self, *args, **kwargs)
        except QemuFailure as failure:
            death = None if isinstance(failure, QemuDied) else self.death_of_a_qemu()
            if death is not None and explains(death, failure):
                self.log.info("%s; first noticed as %s", death.reason(), failure.reason())
                self.qemu_failed(death, known, cause=failure)
            self.qemu_failed(failure, known)
        except OUTCOMES:
            raise
        except AssertionError as failure:  # the test's own FAIL (an oracle's): a finding as it stands
            if not flaky:
                raise
            raise TestFail(f"{failure}{known}") from failure
        except Exception as error:  # the suite's ERROR, unless a QEMU of the test died
            death = self.death_of_a_qemu(noticed_by=error)
            if death is not None:
                self.qemu_failed(death, known, cause=error)
            raise
        # A reproducer's trigger (ISSUE) is meant to crash QEMU: its ``report`` judged the end.
        if not self.ISSUE and (death := self.death_of_a_qemu()) is not None:
            self.qemu_failed(death, known)  # e.g. killed by a signal while it quit: the test saw nothing
        return result

    run.qemu_failures_fail = True  # type: ignore[attr-defined]
    return run


@contextlib.contextmanager
def timeline_kept(logdir: Path) -> Iterator[Callable[[Storm], Storm]]:
    """``timeline.json`` in ``logdir`` of the storm handed to the yielded function, saved however
    the story ends: a failed storm's timeline is the evidence of when it went wrong."""
    storms: list[Storm] = []

    def keep(storm: Storm) -> Storm:
        storms.append(storm)
        return storm

    try:
        yield keep
    finally:
        for storm in storms:
            storm.timeline.save(logdir / "timeline.json", storm.write_samples)


# A story's storm: ``TxnstormTest.storm`` (a guest), ``daemon_storm`` or ``guest_on_daemon_storm``.
StormOf = Callable[[Topology, Sequence[PlanKind]], contextlib.AbstractContextManager[Storm]]


def explains(death: QemuFailure, failure: QemuFailure) -> bool:
    """A crash explains any other failure (a stall, a refusal, a hang of the QEMU that waited on
    it); a hang explains a stall or a refusal: the guest's requests to a stopped daemon never end."""
    def rank(f: QemuFailure) -> int:
        return 2 if isinstance(f, QemuDied) else 1 if isinstance(f, QemuHung) else 0

    return rank(death) > rank(failure)


class TxnstormTest(Test):
    """:avocado: disable

    Verdicts: PASS; FAIL for an oracle violation or a failure of the QEMU
    under test (``QemuFailure``: crash, hang, stalled device, refused
    command); ERROR for the suite's own faults; WARN for a listed known
    issue; CANCEL only when the QEMU lacks a feature the test needs.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("test") and callable(value):
                setattr(cls, name, qemu_failures_fail(value))

    # What a test needs is said by values, not by a subclass:
    NEEDS_GUEST = True  # False: no guest is booted (no guest cache, no accelerator probe)
    NEEDS_DAEMON = False  # True: the QEMU under test's qemu-storage-daemon (CANCEL when it has none)
    ISSUE = ""  # a known issue's reproducer: its id; ``report`` judges how the trigger ended
    RELATED: tuple[str, ...] = ()  # issues the same trigger is known to hit first

    def setUp(self) -> None:
        sweep_stale()
        self._to_kill: list[QemuProcess] = []
        try:  # the user's settings, read once (this process's entry point): Avocado's -p parameters win
            self.settings = Settings.from_env().given(
                qemu=self.params.get("qemu"), qemu_img=self.params.get("qemu_img"), accel=self.params.get("accel"),
                by="-p qemu",
            )  # fmt: skip
            self.seed = self._seed()  # bad input first, before anything slow
            bed = testbed.set_up(self.settings, say=self.log.info, needs_guest=self.NEEDS_GUEST, needs_caps=False)
            self.keeping, self.sut = bed.keeping, bed.sut  # known before the schema probe: a FAIL names its version
            if self.NEEDS_GUEST:
                self.guest_image, self.accel = bed.guest, bed.accel
            bed = bed.with_caps(say=self.log.info)
            self.caps = bed.caps
        except UserError as exc:
            # Not CANCEL: a missing guest or a wrong QEMU means nothing was
            # tested, which must never read as a clean run.
            self.error(str(exc))
        except QemuFailure as failure:
            # The QEMU under test died answering its schema: its FAIL, which the test method says
            # (Avocado makes whatever setUp raises an ERROR, and bisect-run would skip the commit).
            self.failed_in_setup = failure
            self.log.info("%s: the test method says it as the verdict", failure.reason())
            return
        accel_name, accel_reason = (self.accel.accel, self.accel.reason) if self.NEEDS_GUEST else ("none", "no guest")
        self.log.info("system under test: %s, accel %s (%s)", self.sut.describe(), accel_name, accel_reason)
        self.log.info("seed %d (replay: avocado run ... -p seed=%d)", self.seed, self.seed)
        self.whiteboard = ""  # a fresh record per test
        self.record(
            seed=self.seed, qemu=self.sut.version, accel=accel_name, qemu_path=str(self.sut.qemu),
            qemu_img_path=str(self.sut.qemu_img), accel_reason=accel_reason,
        )  # fmt: skip
        self.qemu_img = QemuImg(self.sut.qemu_img)
        if self.NEEDS_GUEST:
            self.platform = bed.platform
        self.scratch = self.logdir_path / "scratch"
        self.scratch.mkdir(exist_ok=True)
        # saved guests of the same shape load instead of booting (TXNSTORM_BOOT=cold: never)
        self.boot_states = BootStates(self.settings.cache_dir / "boot-states") if self.settings.restore_guests else None
        self.set_up_what_the_test_needs()

    def set_up_what_the_test_needs(self) -> None:
        """Beyond the QEMU under test and its guest: the daemon (``NEEDS_DAEMON``), the known issue
        a reproducer judges (``ISSUE``)."""
        if self.NEEDS_DAEMON:
            self.daemon_binary = storage_daemon.find_daemon(self.sut.qemu)
            if self.daemon_binary is None:
                self.cancel(storage_daemon.missing_daemon(self.sut.qemu))
            self.record(qsd_path=str(self.daemon_binary))
        if self.ISSUE:
            self.issues = known_issues.load()
            self.issue = known_issues.get(self.ISSUE, self.issues)
            self.log.info("%s: %s (listed for QEMU %s)", self.issue.id, self.issue.title, self.issue.affects.describe())

    def tearDown(self) -> None:
        for vm in getattr(self, "_to_kill", []):
            vm.kill()
        if not hasattr(self, "scratch"):
            return
        if self.status == "PASS":
            shutil.rmtree(self.scratch, ignore_errors=True)
        else:
            self.log.info("images kept for diagnosis in %s", self.scratch)

    def record(self, **facts: object) -> None:
        """Add ``facts`` to the test's whiteboard (a JSON object in ``results.json``: what the report,
        the replay line, junit and the reliability tally read); the one place that writes it."""
        self.whiteboard = json.dumps({**json.loads(self.whiteboard or "{}"), **facts})

    def qemu_failed(self, failure: QemuFailure, known: str = "", cause: BaseException | None = None) -> NoReturn:
        """End the test on ``failure`` of the QEMU under test: WARN when it is a listed known issue
        where it is known (this version, this test's shape; ``oracles/known_scope.py``), else FAIL
        with the reason line, "regression of KI-n ..." first for a listed issue back where it was
        fixed or measured absent (``cause``: what noticed the failure first)."""
        reason = failure.reason()
        version = getattr(getattr(self, "sut", None), "version", "?")
        test = self.name.name  # where the failure happened: a listed issue excuses only where it is known
        listed = known_issues.listed_failure(reason, version, known_issues.load(), test) if version != "?" else None
        self.record(failure={"kind": failure.kind, "stage": failure.stage, "reason": reason,
                             "noticed_by": f"{type(cause).__name__}: {cause}" if cause else None,
                             **known_issues.failure_facts(listed)})  # fmt: skip
        if listed is not None and listed.status == "WARN":
            # A listed issue where it is known (or said outside it): visible, but the job stays green.
            raise TestWarn(f"{listed.label}: {reason}") from cause or failure
        regression = f"{listed.label}: " if listed is not None else ""  # a listed issue where it was not known
        raise TestFail(f"{regression}{reason} (QEMU {version}){known}") from cause or failure

    def death_of_a_qemu(self, noticed_by: BaseException | None = None) -> QemuFailure | None:
        """The failure of a QEMU process this test started (the guest's QEMU, every daemon) that
        ended it, whoever noticed first: a crash before a hang, the first started first.  What
        noticed it (``noticed_by``) goes to the log as evidence."""
        deaths = [death for process in getattr(self, "_to_kill", []) if (death := process.death()) is not None]
        if not deaths:
            return None
        death = next((d for d in deaths if isinstance(d, QemuDied)), deaths[0])
        if noticed_by is not None:
            self.log.info("%s; first noticed as %s: %s", death.reason(), type(noticed_by).__name__, noticed_by)
        return death

    def kill_at_teardown(self, process: QemuProcess) -> None:
        """Hand a QEMU or daemon to tearDown, which kills it by PID if it is still running (call it
        before launching: a test that fails mid-boot leaves nothing behind)."""
        self._to_kill.append(process)

    def _seed(self) -> int:
        value = self.params.get("seed", default=self.settings.seed)
        if value in (None, ""):
            return random.SystemRandom().randrange(1 << 32)
        try:
            return int(value)
        except ValueError:
            # ERROR, not CANCEL: nothing was tested, which must never keep a job green.
            self.error(f"seed {value!r} is not an integer; pass -p seed=N or TXNSTORM_SEED=N")
            raise

    def require(
        self, commands: Sequence[str] = (), actions: Sequence[str] = (), aio: Sequence[str] = (),
        devices: Sequence[str] = (), props: Mapping[str, Sequence[str]] | None = None,
    ) -> None:  # fmt: skip
        """CANCEL (not ERROR, not FAIL) when this QEMU lacks a feature the test needs."""
        missing = self.caps.missing(tuple(commands), tuple(actions), tuple(aio), tuple(devices), props)
        if missing:
            self.cancel(f"QEMU {self.caps.version} lacks {', '.join(missing)}")

    @property
    def logdir_path(self) -> Path:
        return Path(self.logdir)

    # -- verbs -------------------------------------------------------------
    def create_images(self, topology: Topology, scratch: Path | None = None) -> dict[str, Path]:
        """The images of ``topology``'s disks, in ``scratch`` (default: the test's)."""
        scratch = scratch or self.scratch
        return {d.name: self.qemu_img.create(scratch / f"{d.name}.{d.fmt}", d.size, d.fmt) for d in topology.disks}

    @contextlib.contextmanager
    def boot(self, topology: Topology, daemon: StorageDaemon | None = None) -> Iterator[Booted]:
        """Boot the guest on ``topology``; its vhost-user-blk disks are ``daemon``'s exports."""
        if daemon is None:
            vm = Machine(self.platform, topology, self.logdir_path, self.create_images(topology))
        else:
            vm = Machine(self.platform, topology, self.logdir_path, {}, daemon.vhost_export_sockets())
        self.kill_at_teardown(vm)  # before launch: tearDown kills it even mid-boot
        with booted(vm, self.guest_image, states=self.boot_states) as b:
            self.log.info("%s %s in %.2f s", b.how, topology.name, b.boot_seconds)
            self.record(guest_boot=b.how)  # "restored": its QEMU loaded a saved guest (TXNSTORM_BOOT=cold: never)
            yield b

    # -- the story: boot, storm, fire, verify ---------------------------------------
    @contextlib.contextmanager
    def storm(
        self, topology: Topology, plans: Sequence[PlanKind] = (), *, stamps: bool = True,
        nbd_stamps: bool = False, also_actions: Sequence[str] = (),
    ) -> Iterator[Storm]:  # fmt: skip
        """Boot ``topology`` and storm every disk with fio; with ``stamps``
        the guest stamp writer (with ``nbd_stamps`` also the host NBD one,
        through QEMU's NBD server: under TCG the host client is the one that
        really races a QMP command) writes the first and last disk.
        ``plans``: the rounds the test will fire, in order (``self.rounds``),
        prepared before the storm starts (``scenario/ahead.py``); what they
        (and ``also_actions``) need is checked before boot: a QEMU without it
        CANCELs.  Leaving the block stops the storm and quits QEMU;
        NBD clients close after that (on 7.2 a disconnect from an iothread
        export aborts, KI-1)."""
        self.require(actions=[*action_types(plans), *also_actions], **caps.needs_of(topology))
        witnesses = Witnesses.of(topology, nbd_stamps) if stamps or nbd_stamps else None
        with timeline_kept(self.logdir_path) as kept:
            with contextlib.ExitStack() as after_qemu, self.boot(topology) as booted:
                work = Workspace(self.scratch, self.qemu_img, self.seed, tuple(plans))
                storm = kept(guest_storm(booted, work, witnesses, after_qemu))
                yield storm
                storm.stop()
            booted.vm.ended_cleanly()  # before any oracle reads images it may not have flushed

    def rounds(self, plans: Sequence[PlanKind], default: int | None = None, rotations: int = 1) -> list[PlanKind]:
        """The plans in turn, for as many rounds as the ``rounds`` parameter
        says (``-p rounds=N``), else ``default``, else ``rotations`` rounds per
        plan and at least 3."""
        count = int(self.params.get("rounds", default=default or max(3, rotations * len(plans))))
        return rounds_of(plans, count)

    def verify(self, storm: Storm) -> list[Finding]:
        """Every oracle on the storm's captures (QEMU has quit)."""
        findings = storm.verify()
        for finding in findings:
            self.log.info("oracle: %s", finding.describe())
        violated = [f.round_no for f in findings if not f.ok]
        self.record(
            rounds=len(storm.records), checks=len(findings), first_violation_round=min(violated) if violated else None,
            not_judged=sum(not f.judged for f in findings),
        )  # fmt: skip
        self.verified = storm
        return findings

    def assert_one_point_in_time(self, findings: list[Finding]) -> None:
        """FAIL with one reason line (how many checks, which rounds, the first violation); the whole
        list is in oracle.log and on the report.  The images kept are the violated rounds' (and
        every image they need)."""
        self.assertTrue(findings, "no oracle ran")
        bad = [f for f in findings if not f.ok]
        if bad:
            if (storm := getattr(self, "verified", None)) is not None:
                removed, freed = storm.drop_captures_of_agreeing_rounds({f.round_no for f in bad})
                self.log.info("kept the violated rounds' captures; removed %d of the agreeing rounds' (%d MiB)",
                              removed, freed >> 20)  # fmt: skip
            rounds = ", ".join(str(r) for r in sorted({f.round_no for f in bad}))
            self.fail(
                f"transaction did not capture one point in time: {len(bad)} of {len(findings)} checks violated "
                f"(round {rounds}); first: {bad[0].describe()} (QEMU {self.sut.version})"
            )

    def one_point_in_time(
        self, topology: Topology, plans: Sequence[PlanKind] = (), *, storm_of: StormOf | None = None,
        stamps: str = "", rotations: int = 1,
    ) -> None:  # fmt: skip
        """The story: storm ``topology`` (``storm_of``: ``self.storm``, the guest's, by default;
        ``self.daemon_storm``, ``self.guest_on_daemon_storm``), fire ``plans`` (default: every
        plan) in turn as one transaction each, verify: one point in time.  ``stamps``: the
        stamp writer whose oracle must have run ("nbd", "guest")."""
        rounds = self.rounds(list(plans or PLANS.values()), rotations=rotations)
        findings = self.verify(every_round_fired((storm_of or self.storm)(topology, rounds), rounds))
        if stamps:
            checked = any(f.oracle.startswith(f"cross-disk stamps/{stamps}") for f in findings)
            self.assertTrue(checked, f"{stamps} stamps unchecked")
        self.assert_one_point_in_time(findings)

    def separate_commands_caught(
        self, topology: Topology, plans: Sequence[PlanKind] = (), *, storm_of: StormOf | None = None
    ) -> None:
        """The control of that story: the same plans as separate commands, caught by every oracle."""
        rounds = self.rounds(list(plans or PLANS.values()))
        storm = every_round_fired((storm_of or self.storm)(topology, rounds), rounds, atomic=False)
        self.assert_every_oracle_caught(self.verify(storm))

    def assert_a_stopped_guest_fails_the_write_check(self, storm: Storm) -> None:
        """The "devices write again" check's own control (``storm.still_writing``): with the guest
        stopped, the same wait must time out."""
        storm.vm.cmd("stop")
        with self.assertRaises(DeadlineExceeded, msg="a stopped guest passed the 'write again' check"):
            wait_until_writing(storm.vm, storm.disks, timeout=3)
        storm.vm.cmd("cont")
        storm.mark("control: a stopped guest failed the 'write again' check")

    def assert_every_oracle_caught(self, findings: list[Finding]) -> None:
        """A negative control of every oracle that ran."""
        for oracle in sorted({f.oracle for f in findings}):
            self.assert_control_detected(findings, oracle)

    def assert_control_detected(self, findings: list[Finding], oracle_prefix: str) -> None:
        """A negative control PASSes when the oracle caught the non-atomic
        sequence in every round it could judge (``rounds.check_control``)."""
        self.log.info("control: %s", check_control(findings, oracle_prefix))

    # -- qemu-storage-daemon (NEEDS_DAEMON) ---------------------------------------------
    def _require_daemon(self, daemon: StorageDaemon, plans: Sequence[PlanKind]) -> None:
        """CANCEL when the daemon's own QMP schema lacks the plans' actions or the export type of a
        disk (NBD always; vhost-user-blk only when built with it)."""
        version = daemon.cmd("query-version")["qemu"]
        text = f"{version['major']}.{version['minor']}.{version['micro']}"
        if text != self.sut.version:
            self.log.warning("%s is QEMU %s, the QEMU under test %s", daemon.daemon, text, self.sut.version)
        schema = daemon.cmd("query-qmp-schema")
        missing = caps.from_schema(text, schema).missing(actions=tuple(action_types(plans)))
        if daemon.topology.on_daemon and "vhost-user-blk" not in caps.export_types(schema):
            missing.append("export type vhost-user-blk")
        if missing:
            self.cancel(f"{storage_daemon.DAEMON_BINARY} {text} lacks {', '.join(missing)}")

    def new_daemon(self, topology: Topology, logdir: Path, scratch: Path | None = None) -> StorageDaemon:
        """A daemon (not launched) serving ``topology``'s new images (in ``scratch``, default the
        test's), its logs in ``logdir``; handed to tearDown before it launches."""
        logdir.mkdir(parents=True, exist_ok=True)
        daemon = StorageDaemon(self.daemon_binary, topology, logdir, self.create_images(topology, scratch),
                               self.keeping)  # fmt: skip
        self.kill_at_teardown(daemon)  # before launch: tearDown kills it by PID even mid-start
        return daemon

    @contextlib.contextmanager
    def daemon_storm(
        self, topology: Topology, plans: Sequence[PlanKind], logdir: Path | None = None,
        scratch: Path | None = None,
    ) -> Iterator[Storm]:  # fmt: skip
        """Start the daemon with ``topology``'s disks exported over NBD in
        their iothreads; NBD clients storm every export and the host stamp
        writer stamps the first and last.  Leaving the block stops the
        storm and quits the daemon; the clients close after that (KI-1).
        ``logdir``, ``scratch``: where this daemon's logs and images go
        (default: the test's; a reproducer gives each daemon its own)."""
        logdir, scratch = logdir or self.logdir_path, scratch or self.scratch
        scratch.mkdir(parents=True, exist_ok=True)
        daemon = self.new_daemon(topology, logdir, scratch)
        with timeline_kept(logdir) as kept, contextlib.ExitStack() as after_daemon, storage_daemon.serving(daemon):
            self._require_daemon(daemon, plans)
            work = Workspace(scratch, self.qemu_img, self.seed, tuple(plans))
            storm = kept(daemon_storm(daemon, work, nbd_witnesses(topology), after_daemon))
            yield storm
            storm.stop()

    @contextlib.contextmanager
    def guest_on_daemon_storm(self, topology: Topology, plans: Sequence[PlanKind]) -> Iterator[Storm]:
        """Start the daemon exporting ``topology``'s disks over vhost-user-blk (its logs in
        ``daemon/``), boot the guest on them, storm every disk with fio and stamp the first and
        last.  Leaving the block stops the storm, quits the guest's QEMU, then the daemon."""
        self.require(actions=action_types(plans), **caps.needs_of(topology))
        daemon = self.new_daemon(topology, self.logdir_path / "daemon")
        with timeline_kept(self.logdir_path) as kept, contextlib.ExitStack() as after_qemu, \
                storage_daemon.serving(daemon):
            self._require_daemon(daemon, plans)
            with self.boot(topology, daemon) as booted:
                work = Workspace(self.scratch, self.qemu_img, self.seed, tuple(plans))
                storm = kept(guest_on_daemon_storm(booted, daemon, work, Witnesses.of(topology, False), after_qemu))
                yield storm
                storm.stop()
            booted.vm.ended_cleanly()  # before any oracle reads images it may not have flushed

    # -- a known issue's reproducer (ISSUE) ----------------------------------------------
    def report(self, crash: str | None, tries: int, **facts: object) -> None:
        """The verdict on ``tries`` tries of the trigger (as the issue's rate
        counts them) that ended in ``crash`` (None: QEMU survived them all)."""
        # Signatures on the exit report alone ("killed by SIGSEGV") are too
        # generic for every test: only reproducers that name them consult them.
        if crash is not None:
            self.log.info("%s: the trigger ended in: %s", self.ISSUE, crash)
        candidates = [i for i in self.issues if not i.signature.startswith("killed by ") or i.id in self.RELATED]
        verdict = known_issues.judge(self.issue, self.sut.version, crash, candidates, tries=tries, test=self.name.name)
        self.record(known_issue={**verdict.as_dict(), **facts})
        if verdict.status == "FAIL":
            self.fail(verdict.label)
        elif verdict.status == "WARN":
            # WARN keeps the job's exit status 0 and puts the label on the result line.
            raise TestWarn(verdict.label)
        else:
            self.log.info(verdict.label)
