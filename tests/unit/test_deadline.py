"""The one deadline helper every polling loop counts down (issue #24).  No upper bounds on time:
a loaded host may oversleep, and that must not turn these red."""

import time

from txnstorm.deadline import Deadline, wait_until


def test_a_deadline_counts_down_and_sleeps_no_further_than_itself():
    deadline = Deadline(0.2)
    assert deadline.remaining() <= 0.2
    started = time.monotonic()
    steps = 0
    while deadline.sleep(0.05):
        steps += 1
    assert time.monotonic() - started >= 0.2 - 0.01 and steps >= 1
    assert deadline.passed() and deadline.remaining() == 0.0 and deadline.remaining(at_least=0.1) == 0.1
    assert not deadline.sleep(10.0), "no sleep once the deadline passed"


def test_wait_until_asks_first_and_once_more_at_the_deadline():
    asked: list[float] = []
    assert wait_until(lambda: asked.append(1) or True, 10.0, step=1.0) and len(asked) == 1, "asked before sleeping"

    started = time.monotonic()
    assert wait_until(lambda: time.monotonic() >= started + 0.1, 0.1, step=10.0), "the answer at the deadline counts"

    never: list[float] = []
    started = time.monotonic()
    assert not wait_until(lambda: never.append(time.monotonic()) or False, 0.1, step=0.03)
    assert never[-1] - started >= 0.1 and len(never) >= 2
