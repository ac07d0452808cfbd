"""A minimal QMP client and QEMU launcher for the standalone reproducers in
this directory: Python 3 standard library only, so a maintainer can run them
with nothing but QEMU (and, for KI-7 and KI-11, the txnstorm guest: ``guest_lite.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any


class Qmp:
    """One QMP connection over a unix socket; events are skipped, commands and answers printed."""

    def __init__(self, path: str, timeout: float = 30.0, echo: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while True:
            # QEMU creates the socket file at bind() and accepts only after listen(): a loaded host
            # can connect in between and be refused, so both a missing and a refusing socket wait
            self.sock = socket.socket(socket.AF_UNIX)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no QMP socket accepting at {path} after {timeout:.0f} s") from None
                time.sleep(0.1)
        self.file = self.sock.makefile("rw")
        self.echo = echo
        greeting = self.file.readline()
        if echo:
            print("<-", greeting.strip()[:100], "...")
        self.cmd("qmp_capabilities")

    def cmd(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        """The answer ({"return": ...} or {"error": ...}); None when QEMU went away."""
        self.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            try:
                line = self.file.readline()
            except ConnectionResetError:
                line = ""
            if not line:
                print(f"-> {command} {json.dumps(arguments)}\n<- (no answer: QEMU went away)")
                return None
            reply = json.loads(line)
            if "event" in reply:
                continue
            if self.echo:
                print(f"-> {command} {json.dumps(arguments)}\n<- {json.dumps(reply)[:300]}")
            return reply

    def cmd_within(self, seconds: float, command: str, **arguments: Any) -> dict[str, Any] | None:
        """As ``cmd``, but raises TimeoutError when no answer comes within ``seconds`` (a hang)."""
        self.sock.settimeout(seconds)
        try:
            return self.cmd(command, **arguments)
        finally:
            self.sock.settimeout(None)

    def close(self) -> None:
        self.sock.close()


def launch(cmd: list[str], cwd: str) -> subprocess.Popen[str]:
    """Start QEMU in ``cwd`` (a core, if any, stays there), printing its command line."""
    print("$", " ".join(cmd))
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=cwd)


def end(proc: subprocess.Popen[str]) -> str:
    """End QEMU if it still runs (SIGTERM, then SIGKILL); its stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stderr.read() if proc.stderr else ""


def aborted(proc: subprocess.Popen[str], program: str, wait_s: float = 15.0, answered_after: bool = False) -> int:
    """Give ``proc`` ``wait_s`` to abort (it comes at once; a loaded host may
    need seconds), end it, print its stderr and the verdict; the exit status
    of a reproducer: 1 if it aborted (reproduced), else 0.  ``answered_after``:
    it answered a command sent after the one that aborts, so it survived that
    one and is not waited for."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=0 if answered_after else wait_s)
    print(end(proc), end="")
    if proc.returncode == -signal.SIGABRT:
        print(f"REPRODUCED: {program} aborted (signal {signal.SIGABRT.name})")
        return 1
    print(f"not reproduced: {program} exited {proc.returncode} when told to")
    return 0


def binaries(
    prog: str, doc: str, flags: tuple[str, ...], names: tuple[str, str], argv: list[str]
) -> tuple[str, str, set[str]] | int:
    """The command line of a reproducer taking ``[PROGRAM [QEMU_IMG]] [flags]``: (program,
    qemu-img, the flags given), or the exit status when done (0 after --help, 2 on bad input)."""
    if {"-h", "--help"} & set(argv):
        print(doc)
        return 0
    unknown = [a for a in argv if a.startswith("-") and a not in flags]
    if unknown:
        print(f"{prog}: unknown option {unknown[0]} (--help lists them)", file=sys.stderr)
        return 2
    args = [a for a in argv if not a.startswith("-")]
    program = args[0] if args else shutil.which(names[0])
    qemu_img = args[1] if len(args) > 1 else shutil.which(names[1])
    if not program or not qemu_img:
        print(f"usage: {prog} [{names[0]} [{names[1]}]] ({names[0]}/{names[1]} not on PATH)", file=sys.stderr)
        return 2
    for path in (program, qemu_img):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"{prog}: {path}: not an executable file", file=sys.stderr)
            return 2
    return program, qemu_img, {a for a in argv if a in flags}
