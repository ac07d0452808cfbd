"""How a runner process starts and ends: the one place it reads its settings, and its exit status.

Every entry point of this layer (``scripts/txnstorm``, ``make bench``, ``make reliability``,
``make deaths``, ``scripts/storm-stop-repro``) hands its body to ``run``: the settings are read from
the environment once (an empty or disagreeing setting is bad input, before anything slow) and passed
down as a ``Settings`` value, and whatever ends the body is said the same way by every command:

- ``UserError``: one line, ``txnstorm: error: ...``, its exit status (2);
- Ctrl-C: ``interrupted``, 130; SIGTERM (a CI job's timeout, ``kill``): ``terminated``, 143, after
  the same clean-up as Ctrl-C (``errors.Terminated``);
- a closed pipe (``... | head``): quietly, 141;
- the host failing (a disk filled up, a dir gone read-only): one line, ``EXIT_SUITE``;
- a ``QemuFailure`` met outside a test (boot, schema or accel probe): its reason, ``EXIT_FINDING``;
- the suite's own trouble (``TxnstormError``): its name and text, ``EXIT_SUITE``.

(A scenario test's process is Avocado's; its set-up reads the settings the same once, with
Avocado's ``-p`` parameters given on top: ``Settings.given``.)
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping

from txnstorm.errors import QemuFailure, Terminated, TxnstormError, UserError
from txnstorm.runner.runs import EXIT_FINDING, EXIT_INTERRUPTED, EXIT_SUITE, EXIT_TERMINATED
from txnstorm.settings import Settings

EXIT_BROKEN_PIPE = 141


def _on_sigterm(signum: int, _frame: object) -> None:
    signal.signal(signum, signal.SIG_IGN)  # the clean-up is not cut short by a second one
    raise Terminated


def run(body: Callable[[Settings], int], prog: str = "txnstorm", env: Mapping[str, str] | None = None) -> int:  # noqa: PLR0911 - one status per kind of end
    """``body(settings)``'s exit status, its end said on stderr as ``prog: ...``."""
    before = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        status = body(Settings.from_env(env))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as a tool killed
        # by SIGPIPE would; stdout goes to /dev/null so exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # the host mid-run: a disk that filled up, a dir that went read-only
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{prog}: the host failed the run: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_SUITE
    except QemuFailure as exc:  # met outside a test (boot, schema or accel probe): a finding about that QEMU
        print(f"{prog}: {exc.reason()}", file=sys.stderr)
        return EXIT_FINDING
    except TxnstormError as exc:  # the suite's own trouble (a guest build, the host)
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_SUITE
    finally:
        signal.signal(signal.SIGTERM, before)
