"""Errors with a meaning the runner can act on.

``UserError`` is the only kind a person should ever see as a single line: it
says what is wrong and what to do.

``QemuFailure`` is a finding about the QEMU under test: it crashed, hung,
stopped completing a device's requests, or refused a QMP command a correct
QEMU accepts.  A scenario test reports it as **FAIL** of that QEMU, with
``reason()`` as the line a maintainer reads (``git bisect run`` then calls
the commit bad).  Every other exception is the suite's own fault and stays
an **ERROR** with its traceback.
"""

from typing import Any


class TxnstormError(Exception):
    """Base class of txnstorm's own errors."""

    def add_detail(self, text: str) -> None:
        """Append evidence (e.g. where a backtrace was kept) to the message."""
        self.args = (f"{self.args[0] if self.args else ''} ({text})", *self.args[1:])


class UserError(TxnstormError):
    """Bad input or a host problem the user can fix; printed as one line."""

    exit_status = 2


class DeadlineExceeded(TxnstormError):
    """Something awaited did not happen in time; the message names it."""


class QemuFailure(TxnstormError):
    """The QEMU under test failed; a FAIL of that QEMU, never a suite ERROR.

    ``stage``: where the test was when the failure showed ("while the guest booted", "at 'round 2:
    firing'"), from the process's own progress; the reason line names it after the kind."""

    kind = "QEMU failure"

    def __init__(self, *args: Any, stage: str = "") -> None:
        super().__init__(*args)
        self.stage = stage

    def reason(self) -> str:
        return f"{self.kind} {self.stage}: {self}" if self.stage else f"{self.kind}: {self}"


class QemuDied(QemuFailure):
    """QEMU exited while we still needed it (crash, abort, bad option)."""

    kind = "QEMU crashed"


class QemuRefusedCommandLine(TxnstormError):
    """QEMU exited with an error status before its QMP greeting: it refused the
    command line txnstorm built (features are probed first, so the suite's
    fault: an ERROR, never a FAIL of that QEMU)."""


class QemuHung(QemuFailure, DeadlineExceeded):
    """QEMU did not answer in time: a QMP command, an event, a job."""

    kind = "QEMU hung"


class DeviceStalled(QemuFailure, DeadlineExceeded):
    """A device stopped completing the guest's requests (QEMU still answers QMP).

    ``stall``, once examined (``txnstorm.oracles.stall.examine``), holds the
    evidence: which side holds the requests and what un-stuck them; its
    signature is what a ``stall`` known issue is matched by."""

    kind = "device stalled"
    stall: Any = None  # txnstorm.oracles.stall.StallEvidence
    disks: tuple[str, ...] = ()  # the disks that stopped, when known

    def reason(self) -> str:
        text = super().reason()
        return f"{text}; {self.stall.describe()}" if self.stall is not None else text


class StormStuckInGuest(TxnstormError):
    """A guest writer (fio, the stamp writer) did not end when told to, while
    nothing was held outside its process: no request in flight in the guest's
    block layer, none on QEMU's side.  The suite's (or the guest's) fault, an
    ERROR: never a FAIL of the QEMU under test (issue #22: fio 3.33 waiting in
    ``io_getevents`` for completions it had already reaped)."""

    kind = "storm stuck in the guest"


class QMPCommandError(QemuFailure):
    """QEMU answered a QMP command with an error."""

    kind = "QEMU refused a command"

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{command}: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI job's timeout, ``kill``), taken as Ctrl-C is: every ``finally`` and ``except
    KeyboardInterrupt`` ends what it started; a child that did not get the signal is passed SIGINT."""
