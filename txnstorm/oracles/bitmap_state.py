"""The bitmaps' own state after the bitmap lifecycle: what no image oracle can see.

A lost ``block-dirty-bitmap-disable`` or ``-clear`` only leaves a bitmap recording, or holding
more bits, than it should; an incremental backup that copies more is still right (the mutants
``blockdev.c:2184`` and ``:2192`` of docs/teeth.md survived every image oracle).  So, once the
lifecycle's second round fired and its jobs ended, this reads the bitmaps themselves
(``query-named-block-nodes``).  Every lifecycle bitmap then sits on a node the round froze (no
write reaches it), and the incremental backups left them as they found them (``sync`` bitmap,
``bitmap-mode`` never):

- the bitmap disabled in that round records nothing, and the cleared one, never disabled, still
  records (one read says both: a reader that saw "not recording" everywhere fails here);
- the cleared bitmap and its twin (``plans.twin_of``), added in the same drained section as the
  clear, count the same bytes.  Fired as separate commands (the control), the writes between the
  clear and the twin's add set bits in the cleared bitmap only;
- the bitmap the second round removed (``plans.dropped_of``) is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from txnstorm.transactions.plans import BitmapBase, dropped_of, twin_of
from txnstorm.vm.qemu_process import QemuProcess

DISABLED = "the disabled bitmap records nothing, the enabled one records"
TWIN = "the cleared bitmap counts what its twin counts"
REMOVED = "the removed bitmap is gone"


@dataclass(frozen=True)
class BitmapState:
    count: int  # dirty bytes
    recording: bool
    busy: bool = False  # a job or an unfinished transaction holds it


def bitmap_states(vm: QemuProcess) -> dict[str, BitmapState]:
    """Every named dirty bitmap, by ``node/name`` (a running job's nameless one left out)."""
    return states_of(vm.cmd("query-named-block-nodes", flat=True))


def states_of(named_block_nodes: list[dict]) -> dict[str, BitmapState]:
    """``bitmap_states`` of one ``query-named-block-nodes`` answer."""
    return {
        f"{node['node-name']}/{b['name']}": BitmapState(int(b["count"]), bool(b["recording"]), bool(b.get("busy")))
        for node in named_block_nodes
        for b in node.get("dirty-bitmaps", [])
        if "name" in b
    }


@dataclass(frozen=True)
class StateCheck:
    oracle: str  # DISABLED, TWIN or REMOVED
    ok: bool
    said: str

    def describe(self) -> str:
        return f"{'agrees' if self.ok else 'VIOLATED'}: {self.oracle}: {self.said}"


def lifecycle_checks(states: Mapping[str, BitmapState], base: BitmapBase) -> list[StateCheck]:
    """The three checks of the lifecycle that started at ``base`` (round 1's hand-on: the first
    disk's enabled bitmap, then disabled, and the one removed beside it; ``base.others[0]``: the
    second disk's cleared one)."""
    cleared = base.others[0]
    disabled_key, cleared_key = f"{base.node}/{base.bitmap}", f"{cleared.node}/{cleared.bitmap}"
    twin_key = f"{cleared.node}/{twin_of(cleared.bitmap)}"
    missing = [k for k in (disabled_key, cleared_key, twin_key) if k not in states]
    if missing:
        raise KeyError(f"QEMU lists no bitmap {', '.join(missing)} (it lists {', '.join(sorted(states))})")
    disabled, kept, twin = states[disabled_key], states[cleared_key], states[twin_key]
    dropped_key = f"{base.node}/{dropped_of(base.bitmap)}"
    return [
        StateCheck(DISABLED, not disabled.recording and kept.recording,
                   f"{disabled_key} recording={disabled.recording}, {cleared_key} recording={kept.recording}"),
        StateCheck(TWIN, kept.count == twin.count,
                   f"{cleared_key} counts {kept.count} bytes, {twin_key} {twin.count}"),
        StateCheck(REMOVED, dropped_key not in states,
                   f"{dropped_key} {'still listed: ' + str(states[dropped_key]) if dropped_key in states else 'gone'}"),
    ]  # fmt: skip
