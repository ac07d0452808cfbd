"""Where txnstorm caches what it builds (guests, QEMU builds, probe verdicts).

Standard library only: the input check (``txnstorm.runner.inputs``) runs before any
virtualenv exists.  ``TXNSTORM_CACHE`` wins, else ``$XDG_CACHE_HOME/txnstorm``,
else ``~/.cache/txnstorm``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from txnstorm.errors import UserError


def cache_root() -> Path:
    if os.environ.get("TXNSTORM_CACHE"):
        return Path(os.environ["TXNSTORM_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "txnstorm"


def writable_cache_root() -> Path:
    """The cache root, created if missing, once a file could be written in
    it; else one UserError naming the dir and ``TXNSTORM_CACHE``."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(
            f"cache dir {root} cannot be written ({exc.strerror}); set TXNSTORM_CACHE=/a/dir/you/can/write"
        ) from None
    return root
