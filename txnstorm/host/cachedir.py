"""Where txnstorm caches what it builds (guests, QEMU builds, probe verdicts).

Standard library only: the input check (``txnstorm.runner.inputs``) runs before any
virtualenv exists.  The root is a setting (``Settings.cache_dir``: ``TXNSTORM_CACHE``, else
``$XDG_CACHE_HOME/txnstorm``, else ``~/.cache/txnstorm``), handed down by the entry points.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from txnstorm.errors import UserError


def writable_cache_root(root: Path) -> Path:
    """The cache root, created if missing, once a file could be written in
    it; else one UserError naming the dir and ``TXNSTORM_CACHE``."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(
            f"cache dir {root} cannot be written ({exc.strerror}); set TXNSTORM_CACHE=/a/dir/you/can/write"
        ) from None
    return root
