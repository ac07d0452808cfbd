"""One way to wait with a time limit: a ``Deadline`` (monotonic clock) that every polling loop of
the suite counts down, and ``wait_until`` for the loops that only wait for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    """``seconds`` from now, on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self, at_least: float = 0.0) -> float:
        """Seconds left (never below ``at_least``: a last short wait after the deadline)."""
        return max(at_least, self.at - time.monotonic())

    def passed(self) -> bool:
        return time.monotonic() > self.at

    def sleep(self, step: float) -> bool:
        """Sleep ``step`` (or what is left, if less); False, without sleeping, once the deadline passed."""
        left = self.at - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(step, left))
        return True


def wait_until(condition: Callable[[], bool], seconds: float, step: float) -> bool:
    """Ask ``condition`` every ``step`` until it holds (True) or ``seconds`` passed (False); it is
    asked at least once, and once more at the deadline."""
    deadline = Deadline(seconds)
    while not condition():
        if not deadline.sleep(step):
            return condition()
    return True
