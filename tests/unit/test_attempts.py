"""The one "try until it fails" loop of the reproducers (``scenario/attempts.py``): how it counts
tries, what ends them, and which exceptions it turns into a failure."""

import pytest

from txnstorm.deadline import Deadline
from txnstorm.errors import DeviceStalled, QemuDied, QemuHung, TxnstormError
from txnstorm.scenario.attempts import UntilFailure


def test_every_try_passes_up_to_most():
    attempts = UntilFailure(most=3)
    assert list(attempts) == [1, 2, 3]
    assert (attempts.tries, attempts.failure) == (3, None)


def test_a_returned_failure_ends_the_tries_and_counts_its_own():
    attempts = UntilFailure(most=10)
    for number in attempts:
        attempts.failed(None if number < 4 else "QEMU crashed: abort")
    assert (attempts.tries, attempts.failure) == (4, "QEMU crashed: abort")


def test_a_raised_failure_is_kept_as_its_reason_and_goes_no_further():
    attempts = UntilFailure(most=10, failures=(QemuHung, DeviceStalled))
    with attempts:
        for number in attempts:
            if number == 2:
                raise DeviceStalled("storm wrote nothing to ['disk0'] within 30 s")
    assert attempts.tries == 2
    assert attempts.failure == "device stalled: storm wrote nothing to ['disk0'] within 30 s"


def test_a_failure_while_setting_up_counts_no_try():
    attempts = UntilFailure(most=5, failures=(QemuDied,))
    with attempts:
        raise QemuDied("killed by SIGSEGV")
    assert attempts.tries == 0 and attempts.failure is not None and "SIGSEGV" in attempts.failure


def test_anything_else_raised_is_not_a_failure_of_the_tries():
    attempts = UntilFailure(most=5, failures=(QemuDied,))
    with pytest.raises(TxnstormError), attempts:
        for _ in attempts:
            raise TxnstormError("the suite's own trouble")
    assert attempts.tries == 1 and attempts.failure is None


def test_a_spent_budget_ends_the_tries_before_the_next_starts():
    attempts = UntilFailure(most=100, deadline=Deadline(-1))
    assert list(attempts) == []
    budget = Deadline(60)
    attempts = UntilFailure(most=100, deadline=budget)
    for number in attempts:
        if number == 3:
            budget.at = 0.0  # spent during the third try
    assert attempts.tries == 3
