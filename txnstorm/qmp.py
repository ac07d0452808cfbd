"""A synchronous, logged QMP monitor (qemu.qmp underneath).

Every command, response and event goes to ``qmp.log`` with a timestamp
relative to the monitor's start, in the style of iotests' ``qmp_log``.
Events are buffered so a waiter never misses one that arrived during an
earlier command.  The monitor listens and QEMU connects to it (as
python/qemu/machine does); while waiting for that connection the QEMU
process is watched, so a QEMU that dies at start-up is reported at once, not
as a timeout.  The monitor owns a private event loop: it does not depend on
the calling thread's loop (Avocado runs tearDown in another thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient

from .errors import QemuHung, QMPCommandError

Event = dict[str, Any]
EventMatch = Callable[[Event], bool]


class Monitor:
    def __init__(self, socket_path: Path, log_path: Path, command_timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self.command_timeout = command_timeout
        self.events: list[Event] = []
        self._t0 = time.monotonic()
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._loop = asyncio.new_event_loop()
        self._client = QMPClient("txnstorm")
        self._sync(self._client.start_server(str(socket_path)))

    def _sync(self, awaitable: Any, timeout: float | None = None) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(awaitable, timeout))

    # -- connection ------------------------------------------------------
    def accept(self, timeout: float, alive: Callable[[], None] | None = None) -> None:
        """Wait for QEMU to connect; ``alive`` raises if QEMU died meanwhile."""
        task = self._loop.create_task(self._client.accept())
        deadline = time.monotonic() + timeout
        try:
            while not task.done():
                self._loop.run_until_complete(asyncio.wait({task}, timeout=0.1))
                if task.done():
                    break
                if alive:
                    alive()
                if time.monotonic() > deadline:
                    raise QemuHung(f"QEMU did not connect to QMP within {timeout:.0f} s")
        finally:
            if not task.done():
                task.cancel()
                self._loop.run_until_complete(asyncio.wait({task}))
        task.result()
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
            # _raw: the whole response (for the log), errors included.
            response = dict(self._sync(self._client._raw(request, assign_id=False), timeout))
        except TimeoutError:
            self.note(f"no answer to {name} within {timeout:.0f} s")
            raise QemuHung(f"QMP {name}: no answer within {timeout:.0f} s") from None
        self._write("<-", response)
        self._collect(0)
        if "error" in response:
            err = response["error"]
            raise QMPCommandError(name, err.get("class", "?"), err.get("desc", "?"))
        return response.get("return")

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
        match: EventMatch | None = None,
        timeout: float = 60.0,
        what: str | None = None,
        alive: Callable[[], None] | None = None,
    ) -> Event:
        """Return (and consume) the first event called ``name`` that matches.

        ``alive`` is called between polls so a dead QEMU surfaces as its own
        error, not as a deadline.
        """
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("event") == name and (match is None or match(event)):
                    return self.events.pop(i)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QemuHung(f"waited {timeout:.0f} s for {what or name}; it never came")
            if alive:
                alive()
            self._collect(min(0.5, remaining))
