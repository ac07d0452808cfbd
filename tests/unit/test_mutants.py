"""The drained-section and transaction sites of QEMU's C source, and the mutants made of them
(``txnstorm.runner.csource``, ``txnstorm.runner.mutants``): small C snippets, no QEMU."""

from __future__ import annotations

from pathlib import Path

import pytest

from txnstorm.errors import UserError
from txnstorm.runner import csource, mutants

SNIPPET = """\
#include "qemu/osdep.h"
#define DRAIN(bs) bdrv_drained_begin(bs)   /* a macro: no site */

static void foo_drained_begin(void *opaque)
{
    /* bdrv_drained_begin(bs); in a comment: no site */
    const char *s = "bdrv_drained_end(bs);";
    bdrv_drained_begin(bs);
    if (x)
        bdrv_drained_end(bs);
    else aio_notify(ctx);
    (void)aio_wait_kick();
    ret = blk_inc_in_flight(blk);
    return bdrv_drained_end(bs);
}

static bool foo_poll(void *opaque)
{
    c->klass->drained_end(c);
    if (c->klass->drained_poll(c)) {
        return true;
    }
    virtio_queue_aio_detach_host_notifier(vq,
                                          ctx);
    return false;
}

static const BlockDevOps foo_ops = {
    .drained_begin = foo_drained_begin,
    .drained_poll  = foo_poll,
    .resize_cb     = foo_resize,
};

static void snap_commit(void *opaque) { }

TransactionActionDrv snap_drv = {
    .commit = snap_commit,
    .clean = g_free,
};

static void snap_action(Transaction *tran)
{
    tran_add(tran, &snap_drv, NULL);
}

static void transaction_action(Transaction *tran)
{
    switch (kind) {
    case 1:
        snap_action(tran);
        break;
    }
}
"""


def kinds(text: str) -> list[tuple[str, str, int, str]]:
    return [(s.kind, s.what, s.line, s.function) for s in csource.sites(text)]


def test_blank_keeps_offsets_and_hides_comments_strings_and_macros() -> None:
    blanked = csource.blank(SNIPPET)
    assert len(blanked) == len(SNIPPET) and blanked.count("\n") == SNIPPET.count("\n")
    assert "#define" not in blanked and "in a comment" not in blanked and '"bdrv_drained_end' not in blanked


def test_functions_are_found_with_their_lines() -> None:
    found = {f.name: (f.line, f.end_line) for f in csource.functions(SNIPPET)}
    assert found == {"foo_drained_begin": (4, 15), "foo_poll": (17, 26), "snap_commit": (34, 34),
                     "snap_action": (41, 44), "transaction_action": (46, 53)}  # fmt: skip


def test_sites_are_statements_only() -> None:
    assert kinds(SNIPPET) == [
        ("call", "bdrv_drained_begin()", 8, "foo_drained_begin"),
        ("call", "bdrv_drained_end()", 10, "foo_drained_begin"),
        ("call", "aio_notify()", 11, "foo_drained_begin"),
        ("call", "aio_wait_kick()", 12, "foo_drained_begin"),
        ("hook-call", "drained_end()", 19, "foo_poll"),
        ("call", "virtio_queue_aio_detach_host_notifier()", 23, "foo_poll"),
        ("hook", ".drained_begin = foo_drained_begin", 29, "foo_ops"),
        ("hook", ".drained_poll = foo_poll", 30, "foo_ops"),
        ("step", ".commit = snap_commit", 37, "snap_drv"),
        ("step", ".clean = g_free", 38, "snap_drv"),
        ("prepare", "snap_action()", 50, "transaction_action"),
    ]  # an assignment, a return value and a condition are no statement: no site there


def test_a_field_of_a_struct_that_is_no_transaction_driver_is_no_step() -> None:
    text = "static const Foo ops = {\n    .commit = foo_commit,\n};\n"
    assert csource.sites(text) == []


def test_taking_part_says_why() -> None:
    why = csource.taking_part(SNIPPET)
    assert why["foo_drained_begin"] == "calls bdrv_drained_begin()"
    assert why["foo_poll"].startswith("calls ") or why["foo_poll"] == ".drained_poll of foo_ops"
    assert why["snap_commit"] == ".commit of snap_drv"
    assert why["snap_action"] == "transaction prepare (tran_add)"
    assert "g_free" not in why  # a step that names a function defined elsewhere


def test_a_mutant_deletes_its_site_and_keeps_every_line_number() -> None:
    by_line = {m.site.line: m for m in (mutants.Mutant("x.c", s) for s in csource.sites(SNIPPET))}
    out = by_line[23].apply(SNIPPET)
    assert out.count("\n") == SNIPPET.count("\n")
    assert "virtio_queue_aio_detach_host_notifier" not in out
    assert out.splitlines()[22] == "    ;" and out.splitlines()[23] == ""
    assert ".drained_begin" not in by_line[29].apply(SNIPPET)
    cast = by_line[12].apply(SNIPPET).splitlines()[11]
    assert cast == "    ;"  # the (void) cast goes with its call
    assert by_line[10].apply(SNIPPET).splitlines()[9] == "        ;"  # if (x) ; is still C
    assert by_line[12].id == "x.c:12:call:aio_wait_kick"
    assert by_line[37].id == "x.c:37:step:commit"


def test_generate_reads_the_files_and_dirs_of_a_tree(tmp_path: Path) -> None:
    (tmp_path / "block" / "export").mkdir(parents=True)
    (tmp_path / "block" / "io.c").write_text(SNIPPET)
    (tmp_path / "block" / "export" / "a.c").write_text("void f(void)\n{\n    aio_wait_kick();\n}\n")
    found = mutants.generate(tmp_path, ("block/io.c", "block/export/", "missing.c"))
    assert [m.id for m in found][-1] == "block/export/a.c:3:call:aio_wait_kick"
    assert len(found) == len(csource.sites(SNIPPET)) + 1


def test_select_picks_shards_and_limits() -> None:
    every = [mutants.Mutant("x.c", s) for s in csource.sites(SNIPPET)]
    assert mutants.select(every, shard=(2, 3)) == every[1::3]
    assert sum(len(mutants.select(every, shard=(i, 4))) for i in range(1, 5)) == len(every)
    assert mutants.select(every, limit=2) == every[:2]
    assert [m.site.line for m in mutants.select(every, pick=["step"])] == [37, 38]
    with pytest.raises(UserError, match="names no mutant"):
        mutants.select(every, pick=["nosuch"])


@pytest.mark.parametrize("value", ["0/2", "3/2", "x", "1/0", "1-2"])
def test_a_bad_shard_is_one_line(value: str) -> None:
    with pytest.raises(UserError, match="MUTANTS_SHARD="):
        mutants.parse_shard(value)

