"""QEMU's built-in NBD server (over QMP) and a real NBD client (libnbd).

The server listens on a unix socket inside the machine's private 0700 run
dir, so nothing is reachable from the network and the socket disappears with
the machine.  The client is libnbd's Python binding (Debian's
``python3-libnbd``): the protocol is never written by hand here.

A node attached to a virtio-blk device needs ``share-rw=on`` on the device
(``Disk(share_rw=True)``) before a *writable* export of it is allowed.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from txnstorm.errors import QMPCommandError, TxnstormError
from txnstorm.host.images import nbd_uri
from txnstorm.vm.machine import Machine

SOCKET_NAME = "nbd.sock"


class NbdError(TxnstormError):
    """An NBD server command or a client operation failed; the text says which."""


# -- server (QMP) ------------------------------------------------------------
def socket_path(vm: Machine) -> Path:
    """Where ``start_server`` puts the NBD socket of ``vm``."""
    if vm.rundir is None:
        raise NbdError("machine not launched: it has no run dir for the NBD socket")
    return vm.rundir / SOCKET_NAME


def legacy_unix_addr(path: Path) -> dict[str, Any]:
    """SocketAddressLegacy: what nbd-server-start takes (7.2 accepts nothing else)."""
    return {"type": "unix", "data": {"path": str(path)}}


def flat_unix_addr(path: Path) -> dict[str, Any]:
    """SocketAddress (flat): only a fallback should a QEMU ever drop the legacy form."""
    return {"type": "unix", "path": str(path)}


def _addr_shape_rejected(exc: QMPCommandError) -> bool:
    return exc.error_class == "GenericError" and "addr" in exc.desc and "Parameter" in exc.desc


def start_server(vm: Machine) -> Path:
    """``nbd-server-start`` on a unix socket in ``vm.rundir``; return the socket path.

    The legacy address form is tried first (7.2 accepts only it; it is still
    the documented argument of nbd-server-start); the flat form is tried
    only when QEMU rejects the shape of ``addr``.
    """
    path = socket_path(vm)
    try:
        vm.cmd("nbd-server-start", addr=legacy_unix_addr(path))
    except QMPCommandError as exc:
        if not _addr_shape_rejected(exc):
            raise NbdError(f"nbd-server-start on {path} failed: {exc}") from exc
        vm.cmd("nbd-server-start", addr=flat_unix_addr(path))
    vm.note(f"NBD server listening on {path}")
    return path


def export(vm: Machine, node: str, name: str, writable: bool) -> str:
    """``block-export-add type=nbd`` of ``node`` as ``name`` (also the export id).

    Returns the client URI ``nbd+unix:///NAME?socket=PATH``.  The server must
    have been started with ``start_server``.
    """
    try:
        arguments = {"type": "nbd", "id": name, "node-name": node, "name": name, "writable": writable}
        vm.cmd("block-export-add", **arguments)
    except QMPCommandError as exc:
        hint = ""
        if writable and "permission" in exc.desc.lower():
            hint = " (a node attached to a device needs share-rw=on on it: Disk(share_rw=True))"
        raise NbdError(f"exporting node {node!r} as {name!r} failed: {exc.desc}{hint}") from exc
    link = nbd_uri(socket_path(vm), name)
    vm.note(f"NBD export {name} of node {node} ({'rw' if writable else 'ro'}): {link}")
    return link


def remove_export(vm: Machine, name: str, hard: bool = False, timeout: float = 30.0) -> None:
    """``block-export-del`` and wait until QEMU says the export is gone.

    ``hard`` disconnects clients still connected (``mode=hard``); without it
    QEMU refuses while a client is connected, and that error is raised.
    """
    try:
        vm.cmd("block-export-del", id=name, mode="hard" if hard else "safe")
    except QMPCommandError as exc:
        raise NbdError(f"removing NBD export {name!r} failed: {exc.desc}") from exc
    vm.wait_event(
        "BLOCK_EXPORT_DELETED",
        match={"data": {"id": name}},
        timeout=timeout,
        what=f"BLOCK_EXPORT_DELETED for {name}",
    )


# -- client (libnbd) ---------------------------------------------------------
def _libnbd() -> Any:
    try:
        import nbd  # Debian's python3-libnbd: the venv sees it via --system-site-packages
    except ImportError as exc:
        raise NbdError(
            "libnbd's Python binding is missing: install Debian's python3-libnbd (make setup) "
            "and keep the venv's --system-site-packages"
        ) from exc
    return nbd


_GONE = {errno_mod.ECONNRESET, errno_mod.EPIPE, errno_mod.ENOTCONN, errno_mod.ESHUTDOWN}


def _describe(exc: Exception) -> str:
    text = getattr(exc, "string", None) or str(exc)
    err = getattr(exc, "errno", None)
    if err in _GONE:
        text += " (the server closed the connection: did QEMU die?)"
    return text


class NbdClient:
    """One NBD connection; every request waits for the server's reply.

    ``pwrite`` returns once QEMU has answered the write (it reached the
    block layer), like a completed O_DIRECT write in a guest.
    """

    OPT_MODE = False  # stop in the handshake (NegotiatingClient)

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._nbd = _libnbd()
        self._h: Any = None

    def connect(self) -> Self:
        handle = self._nbd.NBD()
        handle.set_handle_name(f"txnstorm{'-negotiating' if self.OPT_MODE else ''}")
        handle.set_opt_mode(self.OPT_MODE)
        try:
            handle.connect_uri(self.uri)
        except self._nbd.Error as exc:
            raise NbdError(f"NBD connect to {self.uri} failed: {_describe(exc)}") from exc
        self._h = handle
        return self

    @property
    def connected(self) -> bool:
        return self._h is not None

    def _handle(self) -> Any:
        if self._h is None:
            raise NbdError(f"NBD client for {self.uri} is not connected")
        return self._h

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._nbd.Error as exc:
            raise NbdError(f"NBD {what} on {self.uri} failed: {_describe(exc)}") from exc

    @property
    def size(self) -> int:
        return self._call("get_size", self._handle().get_size)

    @property
    def read_only(self) -> bool:
        return bool(self._call("is_read_only", self._handle().is_read_only))

    def pread(self, count: int, offset: int) -> bytes:
        return bytes(self._call(f"read of {count} bytes at {offset}", self._handle().pread, count, offset))

    def pwrite(self, data: bytes, offset: int, fua: bool = False) -> None:
        flags = self._nbd.CMD_FLAG_FUA if fua else 0
        self._call(f"write of {len(data)} bytes at {offset}", self._handle().pwrite, data, offset, flags)

    def aio_pwrite(self, data: bytes, offset: int) -> tuple[int, Any]:
        """Send a write without waiting for its reply: (its cookie, its
        buffer, which must live until ``completed`` says so)."""
        buf = self._nbd.Buffer.from_bytearray(bytearray(data))
        cookie = self._call(f"write of {len(data)} bytes at {offset}", self._handle().aio_pwrite, buf, offset)
        return cookie, buf

    def poll(self, timeout_ms: int) -> None:
        """Wait up to ``timeout_ms`` for the server and process what it sent."""
        self._call("poll", self._handle().poll, timeout_ms)

    def completed(self, cookie: int) -> bool:
        """True (and the command retired) once the server answered it; an
        error answer raises NbdError."""
        return bool(self._call("aio_command_completed", self._handle().aio_command_completed, cookie))

    def flush(self) -> None:
        self._call("flush", self._handle().flush)

    def close(self) -> None:
        """Say NBD_CMD_DISC if the connection still works, then drop the socket.

        Never raises: closing after the server died is normal in a crash test.
        """
        handle, self._h = self._h, None
        if handle is None:
            return
        with contextlib.suppress(self._nbd.Error):  # the server may be gone: the socket is dropped below
            handle.shutdown()
        closer = getattr(handle, "close", None)  # libnbd >= 1.16; older: freed on release
        if closer is not None:
            closer()
        del handle

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class NegotiatingClient(NbdClient):
    """A client that connected and stays in the handshake: libnbd's option mode (the server's
    greeting read, no export chosen yet), as a slow client, a port scan or a TLS client without
    the secret looks to the server.  Such a client belongs to the server, not to an export:
    ``nbd-server-stop`` must end it too (CVE-2024-7409).  It has no export: only
    ``still_connected`` and ``close`` (which says NBD_OPT_ABORT if it can) apply."""

    OPT_MODE = True

    def still_connected(self) -> bool:
        """Whether the server still answers an option request (NBD_OPT_LIST): False once it has
        closed the connection."""
        if self._h is None:
            return False
        try:
            self._h.opt_list(lambda _name, _description: 0)
        except self._nbd.Error:
            return False
        return True
