"""The Jinja environment prompt templates render in: Jinja's immutable sandbox, with bounds.

A `--templates` file is untrusted input (someone else's folder, a download). The sandbox lets it
read the values it is given and nothing else: no attributes that start with `_` (the way out to
Python's globals), no methods that change a value. The bounds keep one render small and short:

- MAX_CHARS: no string or list a template makes, nor the text it renders, holds more than this
  (`'ab' * 10**8` is refused before it is built);
- MAX_NUMBER: no number above this goes to a call or filter (`range`, `center`, `indent`, ...);
  the filters that make more text than they are given (`join`, `replace`, `indent`, `format`,
  `wordwrap`) check what they would make before they make it, and a string's own methods are
  limited to those that make no more than they are given (SAFE_STR_METHODS);
- MAX_STEPS: steps per render (loop iterations, calls, filters, operators), all together;
- MAX_SECONDS: a render that runs longer than this stops at its next step, or at the next check
  of what it wrote (every PARTS_PER_CHECK parts).

A template over a bound raises TemplateBounds (a SecurityError) naming it; `prompts.py` adds
the file and line.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import re
import time
from typing import Any, Iterable, Iterator

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_CHARS = 1_000_000
MAX_NUMBER = 100_000
MAX_STEPS = 1_000_000
MAX_SECONDS = 5.0
PARTS_PER_CHECK = 64  # parts a render writes between checks of its text's length and its time

MAX_REMEMBERED = 10_000  # attribute decisions kept per environment (types x names a template reads)
MAX_WRAPPED = 20_000  # characters `wordwrap` takes: textwrap's time grows with a long word's square
#: The methods of a string a template may call: each makes at most as much text as it is given.
#: (replace, join, center, expandtabs, format and the like can make far more: the bounded
#: filters of the same names do their work.)
SAFE_STR_METHODS = frozenset(
    "lower upper title capitalize casefold swapcase strip lstrip rstrip split rsplit splitlines startswith "
    "endswith count find rfind index rindex partition rpartition removeprefix removesuffix isalnum isalpha "
    "isascii isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle isupper".split()
)

# A %-format width or precision this long makes a string of that many characters.
_WIDE_FORMAT = re.compile(r"%[-#0 +]*(?:\d{6,}|\*)|%[-#0 +]*\d*\.(?:\d{6,}|\*)")


class TemplateBounds(SecurityError):
    """A template went past one of the render bounds."""


class _Budget:
    """What one render has used so far."""

    def __init__(self) -> None:
        self.steps = 0
        self.chars = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateBounds(f"it took more than {MAX_STEPS:,} steps (loop turns, calls, filters) in one render")
        self.check_time()

    def output(self, chars: int) -> None:
        self.chars += chars
        if self.chars > MAX_CHARS:
            raise TemplateBounds(f"it renders more than {MAX_CHARS:,} characters")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateBounds(f"one render ran longer than {MAX_SECONDS:g} seconds")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def render_bounded(template: jinja2.Template, values: dict[str, Any]) -> str:
    """The template's text, rendered within the bounds. What it writes is counted and timed
    every PARTS_PER_CHECK parts (a prompt writes about fifty: a check of each part cost a third
    of its render), the steps between (loop turns, calls, filters) each; past a bound,
    `_Budget` raises, naming it."""
    budget = _Budget()
    token = _budget.set(budget)
    try:
        parts = template.root_render_func(template.new_context(values))  # what Template.render runs
        written: list[str] = []
        while run := _next_parts(template, parts):
            budget.output(sum(map(len, run)))
            written += run
        return "".join(written)
    finally:
        _budget.reset(token)


def _next_parts(template: jinja2.Template, parts: Iterator[str]) -> list[str]:
    """The next parts a render writes; its errors as jinja reports them (template lines in the
    traceback), as `Template.render` does."""
    try:
        return list(itertools.islice(parts, PARTS_PER_CHECK))
    except Exception:
        template.environment.handle_exception()  # raises


def _step() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step()


def _sized(value: Any) -> Any:
    """`value`, unless it is a string or sequence longer than MAX_CHARS."""
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_CHARS:
        raise TemplateBounds(f"it makes a value of {len(value):,} items or characters (at most {MAX_CHARS:,})")
    return value


def _check_numbers(args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, (int, float)) and not isinstance(arg, bool) and abs(arg) > MAX_NUMBER:
            raise TemplateBounds(f"it passes the number {arg:,} to a call or filter (at most {MAX_NUMBER:,})")
        if isinstance(arg, str) and len(arg) > MAX_CHARS:
            _sized(arg)


def _counted(iterable: Any) -> Iterator[Any]:
    """A loop's items, each one a step of the render's budget."""
    for item in iterable:
        _step()
        yield item


def _concat(*parts: Any) -> str:
    """`a ~ b`: the joined text, refused before it is built when too long."""
    texts = [str(p) for p in parts]
    if sum(map(len, texts)) > MAX_CHARS:
        raise TemplateBounds(f"it joins text longer than {MAX_CHARS:,} characters")
    return "".join(texts)


def _bounded_filter(f: Any) -> Any:
    @functools.wraps(f)  # keeps jinja's pass_context/pass_eval_context marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_numbers([*args[1:], *kwargs.values()])
        _step()
        return _sized(f(*args, **kwargs))

    return bounded


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    if _WIDE_FORMAT.search(str(value)):
        raise TemplateBounds("its format string asks for a width or precision of a million characters or more")
    return jinja2.filters.do_format(value, *args, **kwargs)  # type: ignore[attr-defined]


def _join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    """`|join`: refused before it is built when the separators alone pass MAX_CHARS."""
    items = list(value)
    if len(str(d)) * max(0, len(items) - 1) > MAX_CHARS:
        raise TemplateBounds(f"its join would make more than {MAX_CHARS:,} characters")
    return jinja2.filters.sync_do_join(eval_ctx, items, d, attribute)  # type: ignore[attr-defined]


def _indent(s: str, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    pad = len(width) if isinstance(width, str) else int(width)
    if len(str(s)) + (str(s).count("\n") + 1) * pad > MAX_CHARS:
        raise TemplateBounds(f"its indent would make more than {MAX_CHARS:,} characters")
    return jinja2.filters.do_indent(s, width, first, blank)  # type: ignore[attr-defined]


def _wordwrap(environment: Any, s: str, width: int = 79, *args: Any, **kwargs: Any) -> str:
    if len(str(s)) > MAX_WRAPPED:
        raise TemplateBounds(f"it wraps more than {MAX_WRAPPED:,} characters")
    return jinja2.filters.do_wordwrap(environment, s, width, *args, **kwargs)  # type: ignore[attr-defined]


def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    occurrences = str(s).count(str(old)) if count is None or count < 0 else count
    if len(str(s)) + occurrences * len(str(new)) > MAX_CHARS:
        raise TemplateBounds(f"its replace would make more than {MAX_CHARS:,} characters")
    return jinja2.filters.do_replace(eval_ctx, s, old, new, count)  # type: ignore[attr-defined]


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the bounds above. Its globals are a plain dict, not jinja's
    ChainMap over the environment's: every render copies the globals into its context, and
    copying a ChainMap costs most of a short template's render."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}
        self.filters["format"] = _bounded_filter(_format)
        self.filters["replace"] = _bounded_filter(jinja2.pass_eval_context(_replace))
        self.filters["_counted"] = _counted
        self.filters["join"] = _bounded_filter(jinja2.pass_eval_context(_join))
        self.filters["indent"] = _bounded_filter(_indent)
        self.filters["wordwrap"] = _bounded_filter(jinja2.pass_environment(_wordwrap))
        self.globals["_concat"] = _concat
        self._safe_attributes: dict[tuple[type, str], bool] = {}  # (type of object, name) -> safe

    def make_globals(self, d: dict[str, Any] | None) -> dict[str, Any]:  # type: ignore[override]
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Jinja's sandboxed `x.name`, with a name already found safe on this type of value read
        at once (every read of a render but the first of its kind; jinja's path makes two more
        calls for each)."""
        if self._safe_attributes.get((type(obj), attribute)):
            try:
                return getattr(obj, attribute)
            except AttributeError:
                pass
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Decided once per type of object and name, then remembered: the checks (jinja's and
        the string methods' below) look at nothing else, and a render reads a dozen attributes
        at about 3 us each when checked in full, most of a short prompt's render."""
        key = (type(obj), attr)
        safe = self._safe_attributes.get(key)
        if safe is None:
            safe = self._check_attribute(obj, attr, value)
            if len(self._safe_attributes) < MAX_REMEMBERED:
                self._safe_attributes[key] = safe
        return safe

    def _check_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr not in SAFE_STR_METHODS:  # replace, join, center, format: bounded filters instead
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:  # str.format is refused above
        return None

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_numbers([*args, *kwargs.values()])
        _step()
        return _sized(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        _step()
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_CHARS:
                    raise TemplateBounds(f"it repeats a value to more than {MAX_CHARS:,} items or characters")
        if op == "**" and isinstance(left, (int, float)) and isinstance(right, (int, float)):
            if abs(right) > 1000 or (isinstance(left, int) and abs(left) > 2 and abs(right) * abs(left).bit_length() > 10_000):
                raise TemplateBounds("it raises a number to a power too large to compute")
        if op == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise TemplateBounds("its format string asks for a width or precision of a million characters or more")
        if op == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            if len(left) + len(right) > MAX_CHARS:
                raise TemplateBounds(f"it adds values to more than {MAX_CHARS:,} items or characters")
        return _sized(super().call_binop(context, op, left, right))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template's tree, with every loop counted and every `~` bounded."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_counted", [], [], None, None, lineno=loop.lineno)
        for concat in list(tree.find_all(nodes.Concat)):
            joined = nodes.Call(nodes.Name("_concat", "load"), concat.nodes, [], None, None, lineno=concat.lineno)
            _replace_node(tree, concat, joined)
        return tree


def _replace_node(tree: nodes.Node, old: nodes.Node, new: nodes.Node) -> None:
    """Put `new` where `old` is in the tree (in a field, or in a list field)."""
    for parent in tree.find_all(nodes.Node):
        for field in parent.fields:
            value = getattr(parent, field, None)
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                setattr(parent, field, [new if v is old else v for v in value])
                return

