"""A synchronous, logged QMP monitor (qemu.qmp underneath).

Every command, response and event goes to ``qmp.log`` with a timestamp
relative to the monitor's start, in the style of iotests' ``qmp_log``.
Events are buffered so a waiter never misses one that arrived during an
earlier command.  The monitor listens and QEMU connects to it (as
python/qemu/machine does), or, for a program that serves QMP itself
(qemu-storage-daemon's ``--chardev socket,server=on``), the monitor connects
(``listen=False``, ``connect``); while waiting for that connection the QEMU
process is watched, so a QEMU that dies at start-up is reported at once, not
as a timeout.  The monitor owns a private event loop: it does not depend on
the calling thread's loop (Avocado runs tearDown in another thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qemu.qmp import ConnectError, ExecuteError, QMPClient

from txnstorm.deadline import Deadline
from txnstorm.errors import QemuHung, QMPCommandError

Event = dict[str, Any]

# qmp.log keeps every message once; qemu.qmp's own DEBUG copy of each made a
# test's debug.log 99 % repeated JSON (19k lines), so only its warnings go there.
logging.getLogger("qemu.qmp").setLevel(logging.INFO)


class Monitor:
    def __init__(
        self, socket_path: Path, log_path: Path, command_timeout: float = 60.0, listen: bool = True
    ) -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self.command_timeout = command_timeout
        self.unanswered: str | None = None  # the command QEMU left unanswered (it is hung): no quit is asked
        self.events: list[Event] = []
        self._t0 = time.monotonic()
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._loop = asyncio.new_event_loop()
        self._client = QMPClient("txnstorm")
        if listen:
            self._sync(self._client.start_server(str(socket_path)))

    def _sync(self, awaitable: Any, timeout: float | None = None) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(awaitable, timeout))

    # -- connection ------------------------------------------------------
    def accept(self, timeout: float, alive: Callable[[], None] | None = None) -> None:
        """Wait for QEMU to connect; ``alive`` raises if QEMU died meanwhile."""
        task = self._loop.create_task(self._client.accept())
        deadline = Deadline(timeout)
        try:
            while not task.done():
                self._loop.run_until_complete(asyncio.wait({task}, timeout=0.1))
                if task.done():
                    break
                if alive:
                    alive()
                if deadline.passed():
                    raise QemuHung(f"QEMU did not connect to QMP within {timeout:.0f} s")
        finally:
            if not task.done():
                task.cancel()
                self._loop.run_until_complete(asyncio.wait({task}))
        task.result()
        greeting = self._client.greeting
        self._write("<-", greeting._asdict() if greeting else None)

    def connect(self, timeout: float, alive: Callable[[], None] | None = None) -> None:
        """Connect to a QMP server socket once it accepts (it appears while the
        program starts); ``alive`` raises if the program died meanwhile."""
        deadline = Deadline(timeout)
        while True:
            if alive:
                alive()
            if self.socket_path.exists():
                try:
                    self._sync(self._client.connect(str(self.socket_path)), timeout=10)
                    break
                except ConnectError:
                    pass  # created but not yet listening
            if deadline.passed():
                raise QemuHung(f"QMP socket {self.socket_path} did not accept a connection within {timeout:.0f} s")
            time.sleep(0.05)
        greeting = self._client.greeting
        self._write("<-", greeting._asdict() if greeting else None)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection is fine
            self._sync(self._client.disconnect(), timeout=5)
        self._loop.close()
        self._log.close()

    # -- logging ---------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self._t0

    def _write(self, direction: str, message: Any) -> None:
        self._log.write(f"{self.now():9.3f} {direction} {json.dumps(message, sort_keys=True)}\n")
        self._log.flush()

    def note(self, text: str) -> None:
        """Put a human marker in the QMP log (e.g. 'storm started')."""
        self._log.write(f"{self.now():9.3f} ## {text}\n")
        self._log.flush()

    # -- commands --------------------------------------------------------
    def cmd(self, name: str, /, _timeout: float | None = None, **arguments: Any) -> Any:
        """Run a command; return its 'return' value or raise QMPCommandError.
        No answer within ``_timeout`` (default: ``command_timeout``) is QemuHung."""
        timeout = self.command_timeout if _timeout is None else _timeout
        request: dict[str, Any] = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        self._write("->", request)
        try:
            value = self._sync(self._client.execute(name, arguments or None), timeout)
        except ExecuteError as exc:
            self._write("<-", dict(exc.received))
            self._collect(0)
            raise QMPCommandError(name, exc.error_class, str(exc)) from None
        except TimeoutError:
            self.unanswered = name
            self.note(f"no answer to {name} within {timeout:.0f} s")
            raise QemuHung(f"QMP {name}: no answer within {timeout:.0f} s") from None
        self._write("<-", {"return": value})
        self._collect(0)
        return value

    # -- events ----------------------------------------------------------
    def _collect(self, wait: float) -> None:
        new = [dict(e) for e in self._client.events.clear()]
        if not new and wait:
            with contextlib.suppress(TimeoutError):
                new = [dict(self._sync(self._client.events.get(), wait))]
        for event in new:
            self._write("<-", event)
            self.events.append(event)

    def wait_event(
        self,
        name: str,
        match: dict[str, Any] | None = None,
        timeout: float = 60.0,
        what: str | None = None,
        alive: Callable[[], None] | None = None,
    ) -> Event:
        """Return (and consume) the first event called ``name`` whose members
        include ``match`` (nested dicts compare member by member, as iotests'
        ``event_wait(name, match=...)``: ``{"data": {"device": "job0"}}``).

        ``alive`` is called between polls so a dead QEMU surfaces as its own
        error, not as a deadline.
        """
        deadline = Deadline(timeout)
        while True:
            for i, event in enumerate(self.events):
                if event.get("event") == name and matches(event, match or {}):
                    return self.events.pop(i)
            remaining = deadline.remaining()
            if remaining <= 0:
                raise QemuHung(f"waited {timeout:.0f} s for {what or name}; it never came")
            if alive:
                alive()
            self._collect(min(0.5, remaining))


def matches(event: Any, match: Any) -> bool:
    """Every member of ``match`` is in ``event`` with an equal value (dicts recursively)."""
    if isinstance(match, dict):
        return isinstance(event, dict) and all(k in event and matches(event[k], v) for k, v in match.items())
    return bool(event == match)
