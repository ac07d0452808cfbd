"""SSH into the guest with paramiko: wait until ready, run, stream, upload.

The guest's host key is pinned (it comes from the guest build's manifest),
the client key is the build's own.  Dropbear sometimes refuses an exec
channel right after boot under load, so channel opens are retried until a
deadline instead of failing the test.
"""

from __future__ import annotations

import base64
import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from txnstorm.deadline import Deadline
from txnstorm.errors import DeadlineExceeded, TxnstormError
from txnstorm.vm.topology import GUEST_DISK_LOOP

log = logging.getLogger("txnstorm.vm.ssh")
# paramiko logs every refused early connection attempt with a traceback; our
# own errors say what failed.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)


class GuestCommandFailed(TxnstormError):
    pass


@dataclass(frozen=True)
class Result:
    command: str
    status: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        if self.status != 0:
            raise GuestCommandFailed(
                f"guest command {self.command!r} exited {self.status}: {self.stderr.strip()[-500:]}"
            )
        return self


def _host_key(line: str) -> paramiko.PKey:
    kind, blob = line.split()[:2]
    if kind != "ssh-ed25519":
        raise ValueError(f"unsupported guest host key type {kind}")
    return paramiko.Ed25519Key(data=base64.b64decode(blob))


class GuestSession:
    def __init__(self, port: int, private_key: Path, host_key: str, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._key = paramiko.Ed25519Key.from_private_key_file(str(private_key))
        self._host_key = _host_key(host_key)
        self._client: paramiko.SSHClient | None = None

    # -- connection ------------------------------------------------------
    def _connect_once(self, timeout: float) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.get_host_keys().add(f"[{self.host}]:{self.port}", "ssh-ed25519", self._host_key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            self.host,
            port=self.port,
            username="root",
            pkey=self._key,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=False,
            look_for_keys=False,
        )
        return client

    def wait_ready(self, deadline_s: float, alive: Callable[[], None] | None = None) -> float:
        """Connect and run ``true``; return seconds waited.  ``alive`` raises if QEMU died."""
        start, deadline = time.monotonic(), Deadline(deadline_s)
        last_error: Exception | None = None
        while not deadline.passed():
            if alive:
                alive()
            try:
                self._client = self._connect_once(timeout=2.0)
                self.run("true", timeout=10).check()
                return time.monotonic() - start
            except (OSError, paramiko.SSHException, EOFError, GuestCommandFailed) as exc:
                last_error = exc
                self.close()
                time.sleep(0.1)
        raise DeadlineExceeded(
            f"guest SSH on 127.0.0.1:{self.port} not ready within {deadline_s:.0f} s (last error: {last_error})"
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _open_channel(self, deadline_s: float = 10.0) -> paramiko.Channel:
        assert self._client is not None, "not connected"
        deadline = Deadline(deadline_s)
        while True:
            try:
                transport = self._client.get_transport()
                assert transport is not None
                return transport.open_session(timeout=5)
            except (paramiko.SSHException, EOFError, OSError):
                if deadline.passed():
                    raise
                time.sleep(0.1)

    # -- commands --------------------------------------------------------
    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> Result:
        """Run a command to completion (bounded by ``timeout``)."""
        chan = self._open_channel()
        chan.settimeout(timeout)
        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
                chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = Deadline(timeout)
            while not (chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready()):
                if deadline.passed():
                    raise DeadlineExceeded(f"guest command {command!r} still running after {timeout:.0f} s")
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                else:
                    time.sleep(0.01)
            status = chan.recv_exit_status()
        except TimeoutError:
            raise DeadlineExceeded(f"guest command {command!r} timed out after {timeout:.0f} s") from None
        finally:
            chan.close()
        result = Result(command, status, out.decode(errors="replace"), err.decode(errors="replace"))
        return result

    def upload(self, data: bytes, path: str, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` in the guest (no SFTP server needed)."""
        quoted = shlex.quote(path)
        self.run(f"cat > {quoted} && chmod {mode:o} {quoted}", stdin=data, timeout=60).check()

    def disks_by_serial(self) -> dict[str, str]:
        """{serial: /dev/vdX or /dev/sdX} from sysfs: disks are never found by name order."""
        out = self.run(GUEST_DISK_LOOP + ' [ -n "$s" ] && echo $n $s; done; true').check().stdout
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                found[parts[1]] = f"/dev/{parts[0]}"
        return found
