"""Errors with a meaning the runner can act on.

``UserError`` is the only kind a person should ever see as a single line: it
says what is wrong and what to do.  Everything else is a bug in txnstorm or
a finding about QEMU and keeps its traceback.
"""


class TxnstormError(Exception):
    """Base class of txnstorm's own errors."""


class UserError(TxnstormError):
    """Bad input or a host problem the user can fix; printed as one line."""

    exit_status = 2


class QemuDied(TxnstormError):
    """QEMU exited while we still needed it (crash, abort, bad option)."""


class DeadlineExceeded(TxnstormError):
    """Something awaited did not happen in time; the message names it."""


class QMPCommandError(TxnstormError):
    """QEMU answered a QMP command with an error."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{command}: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc
