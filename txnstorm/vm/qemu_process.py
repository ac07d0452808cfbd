"""One process of the QEMU under test: ``qemu-system-x86_64`` booting the guest, a
``qemu-storage-daemon``, or QEMU answering one schema query.

Modelled on python/qemu/machine's ``QEMUMachine``: the parts every QEMU process shares live
here, once: spawned in its own session (dies with us, ended by PID), core dumps allowed, its
QMP monitor (we listen and QEMU connects, or QEMU listens and we connect), the files a failure
is diagnosed from in the log dir (``qemu-cmdline.txt``, ``qemu-stderr.log``, ``qmp.log``; after a
crash ``qemu-crash-backtrace.txt``, gdb on its core, and for a hang ``qemu-backtrace.txt``, gdb on
the live process), the crash report (signal, assertion line), hang detection while waiting for
an event, and the one shutdown path (``quit``, SIGTERM, SIGKILL, always reaped).

What differs is two hooks: ``_command_line(rundir)`` (the program's arguments, its sockets in
the private run dir) and ``_post_launch()``.  The core itself is kept only with
``keep_cores`` (the setting ``TXNSTORM_KEEP_CORES=1``).
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from txnstorm.deadline import wait_until
from txnstorm.errors import (
    DeadlineExceeded,
    QemuDied,
    QemuFailure,
    QemuHung,
    QemuRefusedCommandLine,
    QMPCommandError,
    TxnstormError,
)
from txnstorm.host import process
from txnstorm.host.scratch import make_private_dir
from txnstorm.vm.backtrace import main_thread_site
from txnstorm.vm.qmp import Monitor

log = logging.getLogger("txnstorm.vm.qemu_process")
PING_EVERY_S = 10.0  # while waiting for an event, ask QEMU this often whether it still answers (ping_every_s)
PING_ANSWER_S = 20.0  # ... and call it hung when it does not answer within this (or the QMP window, if shorter)
DEATH_WAIT_S = 2.0  # an abort after its trigger shows up within this
QMP_SOCKET = "qmp.sock"
STEP_SHOWN = 40  # characters of a step a stage names (``stage``)


def crash_summary(stderr_text: str) -> str:
    """The line of QEMU's stderr that says why it died (assertion first)."""
    # QEMU also prints "Formatting '...'" for images it creates: never a reason.
    lines = [line.strip() for line in stderr_text.splitlines() if line.strip() and not line.startswith("Formatting '")]
    for line in lines:
        if "Assertion" in line or "assertion" in line:
            return line
    return lines[-1] if lines else "(no stderr)"


@dataclass(frozen=True)
class Keeping:
    """The user's say in how a QEMU process is watched: keep a crash's core
    (``TXNSTORM_KEEP_CORES``), how long a QMP command may go unanswered (``TXNSTORM_QMP_ANSWER_S``)."""

    cores: bool = False
    qmp_answer_s: float = 60.0


class QemuProcess:
    """A QEMU program under test, launched from ``_command_line`` with QMP on a unix socket."""

    NAME = "QEMU"  # how exit reports and hang reasons name the process
    STARTING = "while it started"  # the stage before the first note in qmp.log (``stage``)
    QUITTING = "while it quit"  # the stage once it is asked to end
    PING_COMMAND = "query-status"  # what ``answers_qmp`` asks
    QMP_LISTENS = True  # True: we listen and QEMU connects (-chardev socket without server); False: QEMU listens
    RUNDIR_PREFIX = "vm"  # the private run dir's name: its sockets, and a core if QEMU dumps one

    def __init__(self, binary: Path, logdir: Path, keeping: Keeping | None = None) -> None:
        self.binary = Path(binary)  # the program (gdb reads its symbols)
        keeping = keeping or Keeping()
        self.qmp_answer_s = keeping.qmp_answer_s  # no answer to a QMP command within this: hung
        self.logdir = Path(logdir)
        self.keep_cores = keeping.cores  # a crash's core moves into the log dir (it is large)
        self.rundir: Path | None = None
        self.qmp: Monitor | None = None
        self._proc: subprocess.Popen | None = None
        self._stderr: Any = None
        self._quitting = False
        self._killed_by_us = False  # ended by SIGTERM/SIGKILL from us: not a crash
        self._gone_unasked = False  # it had ended before we asked it to (a death, whoever noticed it)
        self._hung: str | None = None  # why it was called hung when it was ended (no answer to quit, ...)
        self._ended_at_stage = ""  # ``stage`` when shutdown began
        self.last_note: str | None = None  # the last step qmp.log names (``note``): where the test was
        self.launched_at = 0.0

    # -- the hooks -----------------------------------------------------------
    def _command_line(self, rundir: Path) -> list[str]:
        """The program and its arguments; its QMP socket is ``rundir / QMP_SOCKET``."""
        raise NotImplementedError

    def _post_launch(self) -> None:
        """After the QMP handshake (a note in qmp.log, ...)."""

    # -- paths -----------------------------------------------------------
    @property
    def stderr_log(self) -> Path:
        return self.logdir / "qemu-stderr.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- lifecycle -------------------------------------------------------
    def launch(self, start_timeout: float = 30.0) -> None:
        """Start QEMU and accept its QMP connection; on any failure (or an
        interrupt) QEMU is ended and everything launch made is cleaned."""
        try:
            self._launch(start_timeout)
        except BaseException:
            self.shutdown(hard=True)
            raise

    def _launch(self, start_timeout: float) -> None:
        self._quitting = self._killed_by_us = self._gone_unasked = False  # a launch after a failed one starts afresh
        self._hung, self._ended_at_stage, self.last_note = None, "", None
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.rundir = make_private_dir(self.RUNDIR_PREFIX)
        args = self._command_line(self.rundir)
        (self.logdir / "qemu-cmdline.txt").write_text(shlex.join(args) + "\n")
        self.qmp = Monitor(self.rundir / QMP_SOCKET, self.logdir / "qmp.log", self.qmp_answer_s,
                           listen=self.QMP_LISTENS)
        self._stderr = open(self.stderr_log, "ab")  # noqa: SIM115 - closed in shutdown()
        log.info("launching %s", shlex.join(args))
        self.launched_at = time.monotonic()
        self._proc = process.spawn(args, stdout=self._stderr, stderr=self._stderr, cwd=self.rundir, core_dumps=True)
        handshake = self.qmp.accept if self.QMP_LISTENS else self.qmp.connect
        try:
            handshake(timeout=start_timeout, alive=self.check_alive)
        except QemuDied as died:
            raise self.refused_or(died) from None
        except DeadlineExceeded as late:
            if isinstance(late, QemuFailure):  # alive, never connected: hung at its start
                late.stage = late.stage or self.stage
            raise
        except Exception as exc:  # the QMP handshake broke: usually QEMU is dying
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
            self.check_alive()
            raise QemuDied(f"QMP handshake with {self.NAME} failed ({exc!r}) though it still runs") from exc
        self._post_launch()

    def refused_or(self, died: QemuDied) -> Exception:
        """Why QEMU is gone before its QMP greeting: an exit status (not a signal) there is its
        refusal of the command line txnstorm built; a signal is a crash."""
        if self.returncode is not None and self.returncode > 0:
            text = str(died).removeprefix(f"{self.NAME} ")
            return QemuRefusedCommandLine(f"{self.NAME} refused txnstorm's command line (qemu-cmdline.txt): {text}")
        return died

    def exit_report(self) -> str:
        assert self._proc is not None
        stderr_text = self.stderr_log.read_text(errors="replace") if self.stderr_log.exists() else ""
        report = f"{self.NAME} {process.describe_exit(self._proc.returncode)}: {crash_summary(stderr_text)}"
        backtrace = self.crash_backtrace()
        return f"{report} (backtrace: {backtrace.name})" if backtrace else report

    def crash_backtrace(self, timeout: float = 120.0) -> Path | None:
        """gdb's ``thread apply all bt`` from the core of a QEMU that died by a
        signal, into the log dir (once); None when there is no core."""
        out = self.logdir / "qemu-crash-backtrace.txt"
        if out.exists():
            return out
        cores = sorted(self.rundir.glob("core*")) if self.rundir else []
        if not cores or self.returncode is None or self.returncode >= 0 or not shutil.which("gdb"):
            return None
        with open(out, "w") as f:
            try:
                subprocess.run(
                    ["gdb", "-batch", "-nx", "-ex", "thread apply all bt", str(self.binary), str(cores[0])],
                    stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                f.write(f"\n(gdb gave up after {timeout:.0f} s)\n")
        if self.keep_cores:
            shutil.move(cores[0], self.logdir / "qemu.core")
        return out

    def wait_for_death(self, seconds: float = DEATH_WAIT_S) -> str | None:
        """QEMU's crash report if it exits within ``seconds``, else None (a
        QMP socket can close before the dying QEMU is reaped)."""
        return self.exit_report() if wait_until(lambda: not self.is_running(), seconds, step=0.05) else None

    def died_at_shutdown(self) -> str | None:
        """After shutdown: QEMU killed by a signal while quitting is a crash too."""
        rc = self.returncode
        return self.exit_report() if rc is not None and rc < 0 and not self._ended_by_us(rc) else None

    def check_alive(self) -> None:
        """Raise QemuDied (with signal and assertion text) if QEMU is gone."""
        if self._proc is not None and self._proc.poll() is not None and not self._quitting:
            raise QemuDied(self.exit_report(), stage=self.stage)

    @property
    def stage(self) -> str:
        """Where the test was with this process, from its own progress (the last step its
        ``qmp.log`` names): ``STARTING`` before the first, ``QUITTING`` once asked to end."""
        if self._quitting:
            return self.QUITTING
        if self.last_note is None:
            return self.STARTING
        step = self.last_note.split(" {", 1)[0]  # the step, not its data
        if len(step) > STEP_SHOWN:  # a socket path or URI says nothing of the stage
            step = step[:STEP_SHOWN].rsplit(" ", 1)[0].rstrip(":,") + " ..."
        return f"at '{step}'"

    def death(self) -> QemuFailure | None:
        """How this process failed, whichever channel (SSH, an NBD client, a socket, fio) noticed
        it first: killed by a signal that was not ours, ended before it was asked to, or left a
        command (its quit, or a ping asked now) unanswered.  The stage it was at is in the
        failure.  None: never launched, alive and answering, or ended as it was asked to."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            if self.answers_qmp():
                return None
            hung = QemuHung(f"QMP {self.PING_COMMAND}: no answer within {self.ping_answer_s:.0f} s", stage=self.stage)
            self.keep_backtrace(hung)
            return hung
        stage = self._ended_at_stage or self.stage
        if self._hung is not None:
            return QemuHung(f"{self.NAME} {self._hung}", stage=stage)
        report = self.exit_report() if self._gone_unasked else self.died_at_shutdown()
        return QemuDied(report, stage=stage) if report else None

    def ended_cleanly(self) -> None:
        """After shutdown, before anything reads its images: a process that did not end as it was
        asked to (``death``: a crash, or a hang while it quit) raises that failure."""
        if (death := self.death()) is not None:
            raise death

    def _ended_by_us(self, returncode: int) -> bool:
        """Killed by our SIGTERM or SIGKILL.  Another signal is QEMU's own death even when ours
        came after it: an abort's core dump takes seconds, in which QEMU still looks alive."""
        return self._killed_by_us and returncode in (-signal.SIGTERM, -signal.SIGKILL)

    @property
    def returncode(self) -> int | None:
        """QEMU's exit status once reaped (negative: killed by that signal)."""
        return self._proc.returncode if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def shutdown(self, timeout: float = 15.0, hard: bool = False) -> int | None:
        """The one way QEMU ends: ``quit`` over QMP, then SIGTERM, then
        SIGKILL (``hard``: SIGKILL at once, from any thread or event loop;
        also for a QEMU that left a QMP command unanswered: its main loop
        is stuck, so neither ``quit`` nor SIGTERM's handler would run, and
        its backtrace was taken when the hang was named); always reaped,
        the run dir cleaned, a core read.  Idempotent."""
        if self._proc is None:
            self._release()  # a launch that failed before QEMU started
            return None
        if not self._quitting:  # the first call: what state the test left it in
            self._ended_at_stage = self.stage
            self._gone_unasked = self._proc.poll() is not None
        if self.qmp is not None and self.qmp.unanswered is not None and self._hung is None:
            self._hung = f"left QMP {self.qmp.unanswered} unanswered"
            if not hard:
                log.info("%s %s: SIGKILL, no quit", self.NAME, self._hung)
            hard = True
        self._quitting = True
        try:
            if hard or not self._quit(timeout):
                self._killed_by_us = self._proc.poll() is None
                hard = hard or self._hung is not None  # a QEMU that answers nothing runs no SIGTERM handler
            if hard and self._proc.poll() is None:
                self._proc.kill()
            rc = process.end(self._proc)
        finally:
            self._release()
        return rc

    def _quit(self, timeout: float) -> bool:
        """True when QEMU is gone (or exits within ``timeout`` after ``quit``)."""
        if self._proc is None or self._proc.poll() is not None:
            return True
        if self.qmp is None:
            return False
        try:
            self.qmp.cmd("quit", _timeout=self.ping_answer_s)
        except QemuHung:  # alive, not answering: its stacks are the evidence, then SIGTERM/SIGKILL
            hung = QemuHung(f"did not answer quit within {self.ping_answer_s:.0f} s")
            self.keep_backtrace(hung)
            self._hung = str(hung)
            log.info("%s %s; SIGTERM/SIGKILL", self.NAME, self._hung)
            return self._proc.poll() is not None
        except Exception as exc:  # noqa: BLE001 - gone while asked, or going (a core being dumped)
            log.info("quit over QMP failed (%s); SIGTERM/SIGKILL unless it ends within %.0f s", exc, DEATH_WAIT_S)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(DEATH_WAIT_S)
            return self._proc.poll() is not None
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("QEMU %d ignored quit; SIGTERM/SIGKILL", self._proc.pid)
            return False
        return True

    def dump_backtrace(self, timeout: float = 60.0) -> Path | None:
        """``thread apply all bt`` of the live QEMU into the log dir (for hangs)."""
        if not self.is_running() or not shutil.which("gdb"):
            return None
        out = self.logdir / "qemu-backtrace.txt"
        with open(out, "w") as f:
            try:
                subprocess.run(
                    ["gdb", "-p", str(self.pid), "-batch", "-nx", "-ex", "thread apply all bt"],
                    stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                f.write(f"\n(gdb gave up after {timeout:.0f} s)\n")
        return out

    def keep_backtrace(self, failure: TxnstormError) -> None:
        """A hang: every thread's stack into the log dir before the process goes, named in
        ``failure`` with where the main thread waits (how a hang's known issue is matched)."""
        kept = getattr(failure, "backtraces_kept", set())
        if self.NAME in kept:  # named once, by whichever handler saw the failure first
            return
        trace = self.dump_backtrace()
        if trace is None:
            return
        failure.backtraces_kept = kept | {self.NAME}  # type: ignore[attr-defined]
        site = main_thread_site(trace.read_text(errors="replace"))
        sites = getattr(failure, "main_thread_sites", {})
        failure.main_thread_sites = {**sites, self.NAME: site}  # type: ignore[attr-defined]
        where = f"{self.NAME} main thread in {site}; " if site else f"{self.NAME} "
        failure.add_detail(f"{where}backtrace: {trace.name}")

    def kill(self) -> None:
        """Last resort (tearDown, any thread): ``shutdown(hard=True)``."""
        self.shutdown(hard=True)

    def _release(self) -> None:
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self.rundir is not None:
            self.crash_backtrace()  # a core must not leave with the run dir unread
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None

    def __enter__(self) -> QemuProcess:
        self.launch()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    # -- QMP verbs ---------------------------------------------------------
    def cmd(self, name: str, /, **arguments: Any) -> Any:
        assert self.qmp is not None, "machine not launched"
        self.check_alive()
        try:
            return self.qmp.cmd(name, **arguments)
        except QMPCommandError:
            raise
        except QemuHung as hung:
            hung.stage = hung.stage or self.stage
            raise
        except Exception:
            # The QMP socket may close before QEMU can be reaped: give a dying
            # QEMU a moment, so an abort is reported as one, not as "Disconnected".
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self._proc is not None:
                    self._proc.wait(2)
            self.check_alive()
            raise

    @property
    def ping_answer_s(self) -> float:
        """How long a ping may go unanswered: ``PING_ANSWER_S``, or the user's QMP window when that
        is shorter (``TXNSTORM_QMP_ANSWER_S=10`` calls a hang within 10 s, whichever call meets it)."""
        return min(PING_ANSWER_S, self.qmp_answer_s)

    @property
    def ping_every_s(self) -> float:
        """How often a wait pings: ``PING_EVERY_S``, or a shorter ``ping_answer_s``, so a hang is
        named within two windows of its start."""
        return min(PING_EVERY_S, self.ping_answer_s)

    def answers_qmp(self) -> bool:
        """False if QEMU runs but does not answer ``PING_COMMAND`` within ``ping_answer_s`` (hung)."""
        if self.qmp is None or not self.is_running():
            return True  # nothing to ask; a dead QEMU is reported by check_alive
        try:
            self.qmp.cmd(self.PING_COMMAND, _timeout=self.ping_answer_s)
        except QemuHung:
            return False
        except Exception:  # noqa: BLE001 - an error answer is still an answer
            return True
        return True

    def wait_event(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """Wait for an event; meanwhile QEMU must stay alive and keep
        answering QMP (a hung main loop is named in seconds, not after the
        whole wait)."""
        assert self.qmp is not None
        return self.qmp.wait_event(name, alive=self.watchdog(kwargs.get("what") or name), **kwargs)

    def watchdog(self, waiting_for: str) -> Callable[[], None]:
        """A check to call while waiting for ``waiting_for``: QEMU must stay alive (QemuDied) and,
        every ``ping_every_s``, answer a ping (QemuHung), so a stopped QEMU is named in seconds,
        not after the whole wait."""
        last_answer = time.monotonic()

        def alive_and_answering() -> None:
            nonlocal last_answer
            self.check_alive()
            if time.monotonic() - last_answer >= self.ping_every_s:
                if not self.answers_qmp():
                    raise QemuHung(
                        f"QMP {self.PING_COMMAND}: no answer within {self.ping_answer_s:.0f} s "
                        f"(while waiting for {waiting_for})", stage=self.stage,
                    )  # fmt: skip
                last_answer = time.monotonic()

        return alive_and_answering

    def note(self, text: str) -> None:
        """A step of the test into ``qmp.log`` (also the ``stage`` a failure names)."""
        self.last_note = text
        if self.qmp is not None:
            self.qmp.note(text)
