"""Turn a model completion into the Python program to test (pure functions, no I/O).

1. :func:`fenced_blocks`: Markdown code fences (```` ```python ````, ```` ```py ```` or unlabeled;
   an unclosed last fence, as in truncated output, runs to the end); with several,
   :func:`extract_code` takes the first that defines a function the tests call. Without fences,
   the raw completion (the continuation of a raw prompt).
2. :func:`parsable_span`: when the candidate does not parse, the longest run of lines that
   ``ast.parse`` accepts, starting at an unindented line (skips prose, cuts a truncated tail).
3. :func:`sanitize`: keep imports, function and class definitions and the top-level assignments
   they (or the tests) use; drop top-level asserts, prints and other expressions, loops and
   ``if __name__ == "__main__":`` blocks: models often append their own, sometimes wrong, tests.

Nothing here raises on bad text: no code found is ``""``. :func:`legacy_code` is the earlier
tool's cleaning instead (the legacy verdict).
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

# Fence markers the earlier tool dropped, the first that matches: leading, then trailing.
LEGACY_LEADING_FENCES = ("```python", "```")
LEGACY_TRAILING_FENCE = "```"
# Fence labels taken as Python; other labels (bash, text, ...) are used only when no
# Python-labelled or unlabeled block exists.
PYTHON_LABELS = frozenset({"", "python", "python3", "py", "py3", "pycon", "ipython"})
MAX_LINES = 2000  # longer completions are cut
MAX_PARSES = 1000  # of one span search (see parsable_span)

# An opening fence at the start of a line, its label, then the body up to a closing fence
# line or the end of the text (truncated output leaves the last fence open).
_FENCE_RE = re.compile(
    r"^[ \t]*```[ \t]*(?P<label>[\w+.#-]*)[^\n]*\n(?P<body>.*?)(?:^[ \t]*```|\Z)",
    re.MULTILINE | re.DOTALL,
)
_BUILTIN_NAMES = frozenset(dir(builtins))


class ExtractionMethod(str, Enum):
    """Where the code came from (the dataset's ``extraction_method`` column)."""

    FENCED = "fenced"  # a whole fenced block parsed
    RAW = "raw"  # the whole completion parsed
    SPAN = "span"  # only part of a block or completion parsed (prose, truncation)
    NONE = "none"  # no parsable code


@dataclass(frozen=True)
class Extraction:
    """The program to test and how it was found."""

    code: str
    method: ExtractionMethod


def extract_code(completion: str | None, *, tests: Sequence[str] = (), setup_code: str = "") -> Extraction:
    """The sanitized program in ``completion``.

    Args:
        completion: raw model output (``None`` is treated as empty).
        tests: the task's test statements; the names they call pick the fenced block, and
            top-level assignments they use are kept.
        setup_code: the task's ``test_setup_code`` (names it uses are kept too).

    Returns:
        The code (``""`` when none is found) and the extraction method.
    """
    # ast line numbers count "\n"; CRLF (MBPP's own code uses it) and NULs would break slicing.
    text = (completion or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    wanted = called_names([*tests, setup_code])
    needed = {node.id for node in _nodes([*tests, setup_code]) if isinstance(node, ast.Name)}
    raw = _extract_from(text, ExtractionMethod.RAW, wanted=wanted, needed=needed)
    blocks = fenced_blocks(text)
    if not blocks:
        return raw
    chosen = choose_block(blocks, wanted)
    fenced = _extract_from(chosen, ExtractionMethod.FENCED, wanted=wanted, needed=needed)
    # A stray or unclosed fence can make a "block" of prose: then the text around it wins.
    if not fenced.code or _defines_any(fenced.code, wanted) < _defines_any(raw.code, wanted):
        return raw
    # Chat answers sometimes put the imports in a block of their own.
    return Extraction(_with_imports_from(fenced.code, [b for b in blocks if b is not chosen]), fenced.method)


def legacy_code(completion: str | None, *, prompt: str | None = None) -> str:
    """The program the earlier tool ran for ``completion`` (base baseline 3.5, earlier 7.3, 7.6).

    Drop ``prompt`` when the completion starts with it; strip whitespace; drop a leading
    ```` ```python ````, else a leading ```` ``` ````; drop a trailing ```` ``` ````; strip.
    Everything else stays: prose, the model's own asserts, ``__main__`` blocks.
    """
    text = completion or ""
    if prompt and text.startswith(prompt):
        text = text[len(prompt) :]
    text = text.strip()
    for fence in LEGACY_LEADING_FENCES:
        if text.startswith(fence):
            text = text[len(fence) :]
            break
    return text.removesuffix(LEGACY_TRAILING_FENCE).strip()


def fenced_blocks(text: str) -> list[str]:
    """Bodies of the Markdown code blocks in ``text``: Python-labelled first choice."""
    found = [(m.group("label").lower(), m.group("body")) for m in _FENCE_RE.finditer(text)]
    chosen = [body for label, body in found if label in PYTHON_LABELS] or [body for _, body in found]
    return [body for body in chosen if body.strip()]


def choose_block(blocks: Sequence[str], wanted: Sequence[str]) -> str:
    """The first block defining a wanted name, else the first defining anything, else the first.

    A block that does not parse (truncated output) counts with what its parsable span defines.
    """
    defined = []
    for block in blocks:
        source = _dedent(block)
        defined.append(_definitions(source if _tree(source) else parsable_span(source, wanted=wanted)))
    for block, names in zip(blocks, defined):
        if names & set(wanted):
            return block
    for block, names in zip(blocks, defined):
        if names:
            return block
    return blocks[0]


def parsable_span(text: str, *, wanted: Sequence[str] = ()) -> str:
    """The best run of whole lines of ``text`` that parses.

    Spans start at an unindented, non-blank line and are as long as possible. The best
    defines a wanted name, then has the most non-blank lines; earliest wins ties. The search
    is quadratic at worst (a model repeating "x = (" lines), so it stops after
    :data:`MAX_PARSES` parses (a count, not a clock, so results repeat).
    """
    lines = text.split("\n")[:MAX_LINES]
    best: tuple[tuple[bool, int], str] | None = None
    covered = 0  # a start inside an earlier span can only give a sub-span of it
    budget = MAX_PARSES
    for start, line in enumerate(lines):
        if start < covered or not line.strip() or line[0] in " \t":
            continue
        if budget <= 0:
            break
        # The longest prefix lines[start:end] that parses; a SyntaxError's line cannot be in one.
        end = len(lines)
        while end > start and budget > 0:
            budget -= 1
            try:
                _parse("\n".join(lines[start:end]))
                break
            except SyntaxError as exc:
                end = min(end - 1, start + (exc.lineno or end - start) - 1)
            except (ValueError, RecursionError, MemoryError):
                end -= 1
        else:
            continue
        covered = end
        span = "\n".join(lines[start:end])
        score = (bool(_definitions(span) & set(wanted)), sum(1 for x in lines[start:end] if x.strip()))
        if best is None or score > best[0]:
            best = (score, span)
    return best[1] if best else ""


def sanitize(code: str, *, needed: Iterable[str] = ()) -> str:
    """Keep the definitions of ``code`` (which must parse); drop its scripts and self-tests.

    Kept top-level statements: imports, ``def``/``class``, ``try`` blocks that import, and
    assignments whose targets are used by kept code or named in ``needed``. The kept
    statements keep their original text (tabs, comments inside bodies).
    """
    tree = _tree(code)
    if tree is None:
        return ""
    keep: list[ast.stmt] = []
    assignments: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep.append(node)
        elif isinstance(node, ast.Try) and any(isinstance(s, (ast.Import, ast.ImportFrom)) for s in node.body):
            keep.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            assignments.append(node)
        # Everything else is dropped: asserts, expressions (prints, calls, docstrings), loops,
        # ``if`` blocks (the __main__ guard included), with/raise/del/global statements.
    used = set(needed) | _loaded_names(keep)
    changed = True
    while changed:  # an assignment may need another assignment
        changed = False
        for node in assignments:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]  # type: ignore[attr-defined]
            if node not in keep and {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)} & used:
                keep.append(node)
                used |= _loaded_names([node])
                changed = True
    keep.sort(key=lambda n: (n.lineno, n.col_offset))
    if len(keep) == len(tree.body):
        return code.strip("\n")
    return "\n".join(_statement_source(code, node, tree.body) for node in keep).strip("\n")


def called_names(snippets: Iterable[str]) -> list[str]:
    """Non-builtin names called in ``snippets`` (the functions a test exercises), in order."""
    names: list[str] = []
    for node in _nodes(snippets):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in _BUILTIN_NAMES and node.func.id not in names:
                names.append(node.func.id)
    return names


def _extract_from(source: str, method: ExtractionMethod, *, wanted: Sequence[str], needed: set[str]) -> Extraction:
    """Sanitized code of one candidate: all of it when it parses, else its best span."""
    source = _dedent(source)
    if _tree(source) is None:
        source, method = parsable_span(source, wanted=wanted), ExtractionMethod.SPAN
    code = sanitize(source, needed=needed) if source.strip() else ""
    return Extraction(code, method if code else ExtractionMethod.NONE)


def _with_imports_from(code: str, others: Sequence[str]) -> str:
    """``code`` preceded by the top-level imports of ``others`` that it lacks."""
    have = set(code.split("\n"))
    extra: list[str] = []
    for block in map(_dedent, others):
        for node in getattr(_tree(block), "body", []):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                line = ast.get_source_segment(block, node) or ast.unparse(node)
                if line not in have and line not in extra:
                    extra.append(line)
    return "\n".join([*extra, code])


def _parse(text: str) -> ast.Module:
    # Model code is full of "\d" in plain strings: parse without SyntaxWarning noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text)


def _tree(text: str) -> ast.Module | None:
    """The parsed module, or None when ``text`` does not parse."""
    try:
        return _parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _dedent(text: str) -> str:
    # Blocks inside Markdown lists are indented as a whole; a raw continuation may start
    # with a space after "# Solution:".
    return textwrap.dedent(text.strip("\n"))


def _definitions(code: str) -> set[str]:
    """Names of the top-level functions and classes of ``code`` (none when it does not parse)."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in getattr(_tree(code), "body", []) if isinstance(node, kinds)}


def _defines_any(code: str, wanted: Sequence[str]) -> bool:
    return bool(code) and bool(_definitions(code) & set(wanted))


def _nodes(snippets: Iterable[str]) -> Iterator[ast.AST]:
    """Every node of every snippet that parses."""
    for snippet in snippets:
        tree = _tree(snippet)
        if tree is not None:
            yield from ast.walk(tree)


def _loaded_names(nodes: Iterable[ast.stmt]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _statement_source(code: str, node: ast.stmt, body: Sequence[ast.stmt]) -> str:
    """The original text of a top-level statement, decorators included."""
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    last = node.end_lineno or node.lineno
    shares_line = any(
        other is not node and (other.lineno <= last and (other.end_lineno or other.lineno) >= first)
        for other in body
    )
    if shares_line:  # ``import re; print(x)``: cut at columns, not lines
        return ast.get_source_segment(code, node) or ast.unparse(node)
    return "\n".join(code.split("\n")[first - 1 : last])
