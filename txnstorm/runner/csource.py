"""QEMU's C source read for the two questions of issue #36: where are the drained sections and the
transaction steps, and in which functions?  (``make coverage``'s headline, ``make mutants``'s sites.)

Not a C parser: comments, strings and preprocessor lines are blanked (offsets kept), then braces,
parentheses and a few names are enough for QEMU's style.  A *site* is a place whose deletion makes
a drained section, a quiesce or a transaction step go missing:

* ``call``: a statement that calls a drain or quiesce primitive (``DRAIN_CALLS``: drained sections,
  in-flight counters, virtqueue notifier attach/detach, ``aio_notify``/``aio_wait_kick``);
* ``hook-call``: a statement that calls a drain hook through a pointer (``...->drained_begin(x);``);
* ``hook``: a ``.drained_begin/.drained_end/.drained_poll = fn,`` line of an initializer (the
  hook goes missing: callers check for NULL);
* ``step``: a ``.prepare/.commit/.abort/.clean = fn,`` line of a transaction action's driver
  (``TransactionActionDrv``; 7.2's ``BlkActionOps``);
* ``prepare``: a statement that calls a *prepare* function (one that registers its action's
  driver with ``tran_add``): the action is never prepared.

The functions that *take part* (``make coverage``'s headline) are those that hold a site, those a
``hook`` or ``step`` line names and the prepare functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DRAIN_CALLS = (
    "bdrv_drained_begin", "bdrv_drained_end", "bdrv_drain_all_begin", "bdrv_drain_all_end",
    "bdrv_do_drained_begin", "bdrv_do_drained_end", "bdrv_drained_begin_no_poll",
    "bdrv_parent_drained_begin_single", "bdrv_parent_drained_end_single",
    "bdrv_drain_all", "bdrv_drain", "blk_drain", "blk_drain_all",
    "blk_inc_in_flight", "blk_dec_in_flight", "bdrv_inc_in_flight", "bdrv_dec_in_flight",
    "virtio_queue_aio_attach_host_notifier", "virtio_queue_aio_attach_host_notifier_no_poll",
    "virtio_queue_aio_detach_host_notifier",
    "aio_notify", "aio_wait_kick",
)  # fmt: skip
HOOKS = ("drained_begin", "drained_end", "drained_poll")
STEPS = ("prepare", "commit", "abort", "clean")
TXN_DRIVER_TYPES = ("TransactionActionDrv", "BlkActionOps")
PREPARE_MARK = "tran_add"  # a prepare function registers its action's driver

_IDENT = re.compile(r"[A-Za-z_]\w*")
_CALL = re.compile(r"\b(" + "|".join(DRAIN_CALLS) + r")\s*\(")
_HOOK_CALL = re.compile(r"(?:->|\.)(" + "|".join(HOOKS) + r")\s*\(")
_FIELD = re.compile(r"^[ \t]*\.(\w+)\s*=\s*([A-Za-z_]\w*)\s*,?[ \t]*$", re.MULTILINE)
_LABEL = re.compile(r"^\s*(?:case\b.*|default|[A-Za-z_]\w*)\s*$")


@dataclass(frozen=True)
class Function:
    name: str
    line: int  # of its name
    start: int  # offset of its name
    body: tuple[int, int]  # offsets of its { and its }
    end_line: int


@dataclass(frozen=True)
class Site:
    kind: str  # call, hook-call, hook, step, prepare
    what: str  # the callee, or the field and the function it names (".commit = fn")
    line: int
    span: tuple[int, int]  # what a mutant deletes, in the original text
    function: str  # the function holding it, or the initializer's name

    @property
    def label(self) -> str:
        return f"delete {self.what}"


def blank(text: str) -> str:
    """``text`` with comments, string and character literals and preprocessor lines (with their
    continuations) turned to spaces; newlines and every offset kept."""
    out = list(text)
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            j = i
            while j < n and not (text[j] == "\n" and text[j - 1] != "\\"):
                j += 1
            _spaces(out, i, j)
            i = j
            continue
        if c == "\n":
            at_line_start = True
            i += 1
            continue
        if c not in " \t":
            at_line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            _spaces(out, i, j)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            _spaces(out, i, j)
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            _spaces(out, i + 1, j - 1)
            i = j
        else:
            i += 1
    return "".join(out)


def _spaces(out: list[str], i: int, j: int) -> None:
    for k in range(i, j):
        if out[k] != "\n":
            out[k] = " "


def _match(code: str, i: int, opening: str, closing: str) -> int:
    """The offset of the bracket closing the one at ``i`` (-1 if none)."""
    depth = 0
    for k in range(i, len(code)):
        if code[k] == opening:
            depth += 1
        elif code[k] == closing:
            depth -= 1
            if depth == 0:
                return k
    return -1


def _match_back(code: str, i: int, opening: str, closing: str) -> int:
    depth = 0
    for k in range(i, -1, -1):
        if code[k] == closing:
            depth += 1
        elif code[k] == opening:
            depth -= 1
            if depth == 0:
                return k
    return -1


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass(frozen=True)
class Block:
    """A top-level ``{...}``: a function body (``function`` is its name) or an initializer."""

    name: str
    header: str  # the text from the previous top-level item to the {
    start: int
    body: tuple[int, int]
    function: bool


def top_level_blocks(code: str) -> list[Block]:
    blocks, depth, item_start, i = [], 0, 0, 0
    while i < len(code):
        c = code[i]
        if c == "{" and depth == 0:
            close = _match(code, i, "{", "}")
            close = len(code) - 1 if close < 0 else close
            header = code[item_start:i]
            blocks.append(_block(code, header, item_start, i, close))
            i = close + 1
            item_start = i
            continue
        if c == ";" and depth == 0:
            item_start = i + 1
        i += 1
    return blocks


def _block(code: str, header: str, item_start: int, brace: int, close: int) -> Block:
    stripped = header.rstrip()
    if stripped.endswith(")"):
        paren_close = item_start + len(stripped) - 1
        paren_open = _match_back(code, paren_close, "(", ")")
        before = code[item_start:paren_open].rstrip() if paren_open > 0 else ""
        name = _IDENT.findall(before)
        if name and "=" not in header:
            found = before.rfind(name[-1])
            return Block(name[-1], header, item_start + found, (brace, close), True)
    names = _IDENT.findall(stripped.rstrip("= \n\t[]0123456789"))
    return Block(names[-1] if names else "", header, item_start, (brace, close), False)


def functions(text: str, code: str | None = None) -> list[Function]:
    """The function definitions of a C file (``code``: its ``blank``ed text, if at hand)."""
    code = blank(text) if code is None else code
    return [Function(b.name, _line(text, b.start), b.start, b.body, _line(text, b.body[1]))
            for b in top_level_blocks(code) if b.function]  # fmt: skip


def _statement_start(code: str, start: int) -> int | None:  # noqa: PLR0911 - one return per kind of statement start
    """Where the statement that begins with the expression at ``start`` begins (a ``(void)`` cast
    included), or None when the expression is not the start of a statement (an operand, a
    ``return`` value, a condition)."""
    k = start - 1
    while k >= 0 and code[k] in " \t\n":
        k -= 1
    if k < 0:
        return None
    prev = code[k]
    if prev in ";{}":
        return start
    if prev == ")":
        opening = _match_back(code, k, "(", ")")
        inside = code[opening + 1 : k].strip()
        if inside == "void":
            return _statement_start(code, opening)
        j = opening - 1
        while j >= 0 and code[j] in " \t\n":
            j -= 1
        word = _IDENT.findall(code[max(0, j - 10) : j + 1])
        return start if word and word[-1] in ("if", "while", "for") and code[j].isalnum() else None
    if code[k - 3 : k + 1] == "else" and (k < 4 or not code[k - 4].isalnum() and code[k - 4] != "_"):
        return start
    if prev == ":":
        line_start = code.rfind("\n", 0, k) + 1
        return start if _LABEL.match(code[line_start:k]) else None
    return None


def _statement_end(code: str, paren_open: int) -> int | None:
    """The offset after the ``;`` that ends a call whose ( is at ``paren_open``; None if the call
    is not the whole statement."""
    close = _match(code, paren_open, "(", ")")
    if close < 0:
        return None
    k = close + 1
    while k < len(code) and code[k] in " \t\n":
        k += 1
    return k + 1 if k < len(code) and code[k] == ";" else None


def _owner(funcs: list[Function], offset: int) -> str:
    return next((f.name for f in funcs if f.body[0] < offset < f.body[1]), "")


def _calls(text: str, code: str, pattern: re.Pattern[str], kind: str, funcs: list[Function]) -> list[Site]:
    sites = []
    for m in pattern.finditer(code):
        expr = m.start()
        if kind == "hook-call":  # back over the pointer expression: c->klass->drained_begin
            while expr > 0 and (code[expr - 1].isalnum() or code[expr - 1] in "_->.[]"):
                expr -= 1
        owner = _owner(funcs, m.start())
        start = _statement_start(code, expr) if owner else None
        end = _statement_end(code, m.end() - 1) if start is not None else None
        if start is None or end is None:
            continue
        what = m.group(1) + "()"
        sites.append(Site(kind, what, _line(text, m.start()), (start, end), owner))
    return sites


def _fields(text: str, code: str) -> list[Site]:
    sites = []
    for block in top_level_blocks(code):
        if block.function:
            continue
        is_txn = any(t in block.header for t in TXN_DRIVER_TYPES)
        for m in _FIELD.finditer(code, block.body[0], block.body[1]):
            field, target = m.group(1), m.group(2)
            kind = "hook" if field in HOOKS else "step" if field in STEPS and is_txn else ""
            if kind:
                end = m.end() + 1 if code[m.end() : m.end() + 1] == "\n" else m.end()
                sites.append(Site(kind, f".{field} = {target}", _line(text, m.start(1)), (m.start(), end), block.name))
    return sites


def prepare_functions(code: str, funcs: list[Function]) -> list[str]:
    """Functions that register a transaction action's driver (``tran_add``): its prepare step."""
    mark = re.compile(r"\b" + PREPARE_MARK + r"\s*\(")
    return [f.name for f in funcs if mark.search(code, f.body[0], f.body[1])]


def sites(text: str) -> list[Site]:
    """Every site of a C file, in the order of the text."""
    code = blank(text)
    return _sites(text, code, functions(text, code))


def _sites(text: str, code: str, funcs: list[Function]) -> list[Site]:
    found = _calls(text, code, _CALL, "call", funcs) + _calls(text, code, _HOOK_CALL, "hook-call", funcs)
    found += _fields(text, code)
    prepares = prepare_functions(code, funcs)
    if prepares:
        call = re.compile(r"\b(" + "|".join(map(re.escape, prepares)) + r")\s*\(")
        found += [s for s in _calls(text, code, call, "prepare", funcs) if s.function not in prepares]
    return sorted(found, key=lambda s: s.span)


def taking_part(text: str) -> dict[str, str]:
    """{function: why it takes part in a drained section or a transaction} of a C file."""
    code = blank(text)
    funcs = functions(text, code)
    defined = {f.name for f in funcs}
    why: dict[str, str] = {}
    for f in prepare_functions(code, funcs):
        why.setdefault(f, "transaction prepare (tran_add)")
    for s in _sites(text, code, funcs):
        if s.kind in ("hook", "step"):
            target = s.what.split("= ", 1)[1]
            if target in defined:
                why.setdefault(target, f"{s.what.split(' ', 1)[0]} of {s.function}")
        elif s.function:
            why.setdefault(s.function, f"calls {s.what}")
    for f in funcs:
        if f.name in DRAIN_CALLS:
            why.setdefault(f.name, "a drain primitive")
    return why
