"""Try until it fails: the loop every known-issue reproducer runs.

A reproducer fires its trigger again and again (a transaction, a backup, a
client, a whole boot) until a try fails, it has made ``most`` tries, or its
time budget is spent; the verdict counts the tries made, the failing one
included, as the issue's rate counts them::

    attempts = UntilFailure(most=40, failures=(QemuHung, QemuDied, DeviceStalled))
    with attempts, self.guest_on_daemon_storm(topology, []) as storm:
        for number in attempts:
            trigger(storm, number)
    self.report(attempts.failure, tries=attempts.tries)

A try fails in one of two ways: it raises one of ``failures`` inside
``with attempts:`` (its ``reason()`` is kept, the exception goes no
further; a failure while setting up counts no try), or it returns what went
wrong and the caller hands it to ``failed`` (None: the try passed).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType

from txnstorm.deadline import Deadline
from txnstorm.errors import QemuFailure


class UntilFailure:
    """Tries numbered from 1 while none has failed, fewer than ``most`` were made and ``deadline``
    (if any) has not passed: each is checked before a try starts."""

    def __init__(
        self, most: int, deadline: Deadline | None = None, failures: tuple[type[QemuFailure], ...] = ()
    ) -> None:
        self.most = most
        self.deadline = deadline
        self.failures = failures
        self.tries = 0
        self.failure: str | None = None

    def __iter__(self) -> Iterator[int]:
        while self.failure is None and self.tries < self.most and not (self.deadline and self.deadline.passed()):
            self.tries += 1
            yield self.tries

    def failed(self, failure: str | None) -> None:
        """What the try just made ended in (None: it passed, the tries go on)."""
        if failure is not None:
            self.failure = failure

    def __enter__(self) -> UntilFailure:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, raised: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        if isinstance(raised, self.failures):
            self.failure = raised.reason()
            return True
        return False
