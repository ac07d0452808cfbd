"""Reading gdb's ``thread apply all bt`` of a QEMU process: where its main thread waits.

A hang's reason names that place (``Machine.keep_backtrace``), known issues of
kind ``hang`` match it, and the report shows the backtrace whose main thread
was busy first.
"""

from __future__ import annotations

import re

# Frames of a thread that waits for work (poll, futex, the main loop's own): not where it is stuck.
_WAITING_FRAMES = re.compile(
    r"^(\?\?|_*(GI_+)?p?poll|syscall|fdmon_\w+|aio_poll|qemu_poll_ns|g_main_\w+|glib_pollfds_poll|"
    r"os_host_main_loop_wait|main_loop_wait|qemu_main_loop|qemu_default_main|main|qemu_futex_wait|"
    r"qemu_event_wait|qemu_sem_\w+|qemu_cond_\w+|_*pthread_\w+|_*futex_\w+|_*lll_\w+|__libc_start\w*|_start)$"
)
IDLE_MAIN_LOOP = "its main loop (idle)"  # where a main thread waits that waits for nothing in particular
_FRAME = re.compile(r"^#\d+\s+(?:0x[0-9a-f]+ in )?([\w.]+|\?\?) \(")


def main_thread_site(backtrace: str, depth: int = 3) -> str | None:
    """Where the main thread of a ``thread apply all bt`` waits: its innermost frames that are not
    polling or the main loop's (``"bdrv_drain_all_begin <- bdrv_drain_all <- qmp_transaction"``);
    ``"its main loop (idle)"`` when there are none; None when no thread runs ``main``."""
    for block in re.split(r"\n(?=Thread \d+ )", backtrace):
        names = [m.group(1) for line in block.splitlines() if (m := _FRAME.match(line.strip()))]
        if "main" not in names:
            continue
        site: list[str] = []
        for name in names:
            if not _WAITING_FRAMES.match(name) and (not site or site[-1] != name):  # inlined frames repeat
                site.append(name)
        return " <- ".join(site[:depth]) if site else IDLE_MAIN_LOOP
    return None
