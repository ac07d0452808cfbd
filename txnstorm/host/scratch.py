"""Private scratch directories that never outlive their owner.

Sockets (QMP, NBD) live here: unix socket paths must stay short, so these
dirs sit directly under the system temp dir, mode 0700.  Each dir records the
PID that made it; ``sweep_stale`` removes the dirs of owners that are gone
(a runner killed with SIGKILL cannot clean up after itself).  A process that
exits while a dir is still in use (Avocado ends an interrupted test's process
while the test's thread is still booting) removes its dirs at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PREFIX = "txnstorm-"
OWNER_FILE = ".owner-pid"


def _base() -> Path:
    return Path(tempfile.gettempdir())


_made_here: list[tuple[int, Path]] = []  # (owner pid, dir): removed at exit if still there


@atexit.register
def _remove_ours_at_exit() -> None:
    for pid, path in _made_here:
        if pid == os.getpid():  # a forked child inherits the list, not the dirs
            shutil.rmtree(path, ignore_errors=True)


def make_private_dir(label: str = "run", base: Path | None = None) -> Path:
    """Create a 0700 dir owned by this process and return its path."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{label}-", dir=base or _base()))
    os.chmod(path, 0o700)
    (path / OWNER_FILE).write_text(f"{os.getpid()}\n")
    _made_here.append((os.getpid(), path))
    return path


@contextlib.contextmanager
def private_dir(label: str = "run", base: Path | None = None) -> Iterator[Path]:
    path = make_private_dir(label, base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_roots() -> list[Path]:
    """Every temp dir a run's private dirs may be in: Avocado's test processes do not share the
    harness's idea of it (their QEMUs' ``txnstorm-vm-*`` dirs are in /var/tmp where ours are in /tmp)."""
    return sorted(r for r in {_base(), Path("/tmp"), Path("/var/tmp")} if r.is_dir())


def sweep_stale(base: Path | None = None) -> list[Path]:
    """Remove private dirs whose owning process no longer exists: in ``base``, else in every
    temp root."""
    removed = []
    for path in (p for root in ([base] if base else temp_roots()) for p in sorted(root.glob(f"{PREFIX}*"))):
        owner = path / OWNER_FILE
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or being created right now
        if not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
