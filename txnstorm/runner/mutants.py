"""The mutants of ``make mutants``, generated from QEMU's source (never written by hand): each
drained section, quiesce or transaction step of the files the suite exists for, deleted one at a
time (``csource.sites`` says which places those are).  Pure: text in, text out; the campaign that
builds and runs them is ``mutants_run``.

A mutant keeps every line number: what it deletes becomes ``;`` (a statement) or an empty line
(an initializer's field), with the same newlines.  Its id, ``block/io.c:392:call:bdrv_do_drained_begin``,
is stable while the source is; the order (file by file, in the text's order) is what
``MUTANTS_SHARD=i/n`` deals out: shard i takes every n-th mutant from the i-th.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from txnstorm.errors import UserError
from txnstorm.runner import csource

# The files the suite exists for (issue #36), block/export/ as a dir.
FILES = (
    "block/io.c", "blockdev.c", "block.c", "block/block-backend.c", "nbd/server.c", "hw/block/virtio-blk.c",
    "hw/scsi/virtio-scsi.c", "hw/virtio/virtio.c", "block/export/", "block/copy-before-write.c",
    "block/backup.c", "util/aio-posix.c",
)  # fmt: skip


# Mutants the source shows cannot change behaviour (issue #36's "equivalent"), by id, with the reason
# read in make qemu's 10.2.2 source: the campaign says so and neither builds nor counts them.  An id
# names its line and callee, so a source that moved the code names no entry here.
EQUIVALENT = {
    "hw/block/virtio-blk.c:1675:call:blk_drain": (
        "blk_set_aio_context() two lines below drains the same requests: bdrv_try_change_aio_context() "
        "opens bdrv_drain_all_begin(), which polls until every BlockBackend's in_flight is 0 "
        "(blk_root_drained_poll; the dma-restart BH holds one too), and only then may refuse the move; "
        "a virtio-blk always has a node (it cannot lose its medium).  Only record/replay, where "
        "bdrv_drain_all_begin() returns at once, differs.  Survived the 22-test tier twice (188, 199 s)"
    ),
}


@dataclass(frozen=True)
class Mutant:
    file: str  # relative to the QEMU tree
    site: csource.Site

    @property
    def id(self) -> str:
        name = re.sub(r"\W+", "", self.site.what.split("=")[0]) or self.site.what
        return f"{self.file}:{self.site.line}:{self.site.kind}:{name}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.site.line}"

    def apply(self, text: str) -> str:
        """``text`` (the file's source) with this mutant's deletion, line numbers kept."""
        start, end = self.site.span
        gone = text[start:end]
        keep = "\n" * gone.count("\n")
        replacement = keep if self.site.kind in ("hook", "step") else ";" + keep
        return text[:start] + replacement + text[end:]


def source_files(tree: Path, files: Sequence[str] = FILES) -> list[str]:
    """``files`` (a dir stands for its .c files) as paths relative to ``tree`` that exist there."""
    found = []
    for name in files:
        path = tree / name
        if name.endswith("/"):
            found += [str(p.relative_to(tree)) for p in sorted(path.glob("*.c"))]
        elif path.is_file():
            found.append(name)
    return found


def generate(tree: Path, files: Sequence[str] = FILES) -> list[Mutant]:
    """Every mutant of ``files`` in the QEMU source ``tree``, in order."""
    return [Mutant(name, site) for name in source_files(tree, files)
            for site in csource.sites((tree / name).read_text(errors="replace"))]  # fmt: skip


def stale_equivalents(generated: Sequence[Mutant]) -> list[str]:
    """The ``EQUIVALENT`` ids that name none of ``generated`` (the source moved: read it again)."""
    ids = {m.id for m in generated}
    return [e for e in EQUIVALENT if e not in ids]


def parse_shard(value: str, var: str = "MUTANTS_SHARD") -> tuple[int, int]:
    """``i/n`` with 1 <= i <= n; UserError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "1/1")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise UserError(f"{var}={value} is not a shard i/n with 1 <= i <= n (e.g. {var}=2/4)")
    return int(m.group(1)), int(m.group(2))


def select(mutants: Sequence[Mutant], *, pick: Sequence[str] = (), shard: tuple[int, int] = (1, 1),
           limit: int | None = None) -> list[Mutant]:  # fmt: skip
    """The mutants to run: those whose id contains one of ``pick`` (every one if none), then
    shard i of n (every n-th from the i-th), then the first ``limit``.  A ``pick`` that names no
    mutant is a UserError (a typo must not run nothing and say green)."""
    chosen = list(mutants)
    if pick:
        unknown = [p for p in pick if not any(p in m.id for m in chosen)]
        if unknown:
            raise UserError(f"MUTANTS={' '.join(unknown)}: names no mutant (ids look like "
                            f"{chosen[0].id if chosen else 'block/io.c:392:call:bdrv_do_drained_begin'}; "
                            "make mutants MUTANTS_LIST=1 lists them)")  # fmt: skip
        chosen = [m for m in chosen if any(p in m.id for p in pick)]
    index, total = shard
    chosen = chosen[index - 1 :: total]
    return chosen[:limit] if limit is not None else chosen
