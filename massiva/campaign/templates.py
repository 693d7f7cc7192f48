"""The subject and body templates: Jinja2, sandboxed, strict, compiled once.

Templates are data, not code: they run in Jinja's ``ImmutableSandboxedEnvironment``,
and a template that names an attribute or item starting with ``_`` (``''.__class__``,
``x['__globals__']``, ``x|attr('__class__')``) is refused when it is compiled; what the
sandbox stops while rendering (``'{0.__class__}'.format(x)``, a ``_`` name built at run
time, ``[].append``) is refused for that row. A variable the row does not define is an
error (``StrictUndefined``), never an empty string. The HTML body is autoescaped (a
``<`` in a cell arrives as ``&lt;``); the subject is plain text and must be one line.
The merge fields are the CSV columns, by header name: ``{{ nome }}``. A block tag
(``{% if %}``, ``{% for %}``...) leaves no blank line behind (``trim_blocks`` and
``lstrip_blocks`` are on). A variable read only as ``{{ x|default('') }}`` or tested
with ``x is defined`` is optional; every other one must be a column. Of those, the ones
a template never tests (``{% if x %}``, ``a if x else b``) are "printed": a row where
one is empty leaves a gap in the message (``Gentile Niccolò ,``), which ``check``
reports (:attr:`Renderer.printed`).

Templates (``body_file``, ``subject_file``, ``{% extends %}``, ``{% include %}``) are
looked up in the campaign folder, then in the shared templates folder, and never
outside those two.

Filters for Italian business mail:

``data``
    A date as ``dd/mm/yyyy``. Takes ``2026-03-31`` (also with a time after it),
    ``31/03/2026``, ``31-03-2026``, ``31.03.2026`` (day and month may have one digit),
    or a ``date``/``datetime``. ``{{ scadenza|data }}`` → ``31/03/2026``.
``importo``
    An amount in euro as ``1.234,56 €`` (two decimals, rounded half up; ``-`` for a
    negative one). Takes ``1234.56``, ``1234,56``, ``1.234,56``, ``1,234.56``, ``1234``,
    ``€ 1.234,56``, an int, a float or a ``Decimal``. ``{{ totale|importo }}`` →
    ``1.234,56 €``; ``{{ totale|importo(simbolo=False) }}`` → ``1.234,56``.
    ``1.234`` and ``1,234`` are refused as ambiguous (thousands, or three decimals?).

A value a filter cannot read makes a :class:`RenderError` that names the variable and
the value, e.g. ``"31/02/2026" is not a real calendar date (data filter on "scadenza"
in body template); check the day and the month``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from jinja2 import BaseLoader, Environment, StrictUndefined, Template, TemplateNotFound, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.meta import find_referenced_templates, find_undeclared_variables
from jinja2.sandbox import ImmutableSandboxedEnvironment

from massiva.campaign.errors import CampaignError, RenderError, TemplateKind
from massiva.campaign.paths import PathProblem, real_root, resolve_inside
from massiva.campaign.spec import CampaignSpec, template_not_found

_UNDEFINED = re.compile(r"'([^']*)' is undefined")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_DMY_DATE = re.compile(
    r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?:\s+\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)?"
)
_SIMPLE_AMOUNT = re.compile(r"(-?)(\d+)(?:[.,](\d{1,2}))?")
_AMOUNT = re.compile(r"\d+(?:[.,]\d+)*")
_GROUPS = re.compile(r"\d{1,3}(?:\d{3})*")
_CURRENCY = re.compile(r"^(?:€|eur|euro)\s*|\s*(?:€|eur|euro)$", re.IGNORECASE)
_SWAP = str.maketrans(",.", ".,")
FILTERS = ("data", "importo")


class _BadValue(ValueError):
    """A filter could not read its value; the Renderer names the variable."""

    def __init__(self, filter_name: str, problem: str, fix: str, value: object) -> None:
        super().__init__(problem)
        self.filter_name = filter_name
        self.problem = problem
        self.fix = fix
        self.value = value


def data(value: object) -> str:
    """The ``data`` filter: a date as ``dd/mm/yyyy``."""
    if isinstance(value, str):
        return _data_text(value)
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"
    fix = "write it as dd/mm/yyyy, e.g. 31/03/2026"
    raise _BadValue("data", f"{value!r} is not a date", fix, value)


@lru_cache(maxsize=4096)  # a campaign repeats its few dates on every row
def _data_text(value: str) -> str:
    text = value.strip()
    fix = "write it as dd/mm/yyyy, e.g. 31/03/2026"
    if not text:
        raise _BadValue("data", "an empty value is not a date", fix, value)
    if found := _ISO_DATE.fullmatch(text):
        year, month, day = (int(part) for part in found.groups())
    elif found := _DMY_DATE.fullmatch(text):
        if len(found[4]) == 2:
            fix = "write the year in full, e.g. 31/03/2026"
            raise _BadValue("data", f'"{text}" has a two-digit year', fix, value)
        day, month, year = int(found[1]), int(found[3]), int(found[4])
    else:
        raise _BadValue("data", f'"{text}" is not a date', fix, value)
    try:
        date(year, month, day)
    except ValueError:
        problem = f'"{text}" is not a real calendar date'
        raise _BadValue("data", problem, "check the day and the month", value) from None
    return f"{day:02d}/{month:02d}/{year:04d}"


def importo(value: object, simbolo: bool = True) -> str:
    """The ``importo`` filter: an amount as ``1.234,56 €`` (``simbolo=False``: no €)."""
    text = _importo_text(value) if isinstance(value, str) else _format_cents(_cents(value))
    return f"{text} €" if simbolo else text


def _format_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}".replace(",", ".") + f",{part:02d}"


def _cents(value: object) -> int:
    """A number (not text) in cents, rounded half up."""
    fix = "write it like 1234,56 or 1.234,56"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _BadValue("importo", f"{value!r} is not an amount", fix, value)
    if isinstance(value, int):
        return value * 100
    amount = Decimal(repr(value)) if isinstance(value, float) else value
    if not amount.is_finite():
        raise _BadValue("importo", f"{value} is not an amount", fix, value)
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_UP))


@lru_cache(maxsize=4096)
def _importo_text(value: str) -> str:
    """The amount a cell holds, formatted without the symbol."""
    text = value.strip()
    simple = _SIMPLE_AMOUNT.fullmatch(text)
    if simple:  # 1234, 1234,5 or 1234.56: most cells of most files
        cents = int(simple[2]) * 100 + int((simple[3] or "0").ljust(2, "0"))
        return _format_cents(-cents if simple[1] else cents)
    fix = "write it like 1234,56 or 1.234,56"
    if not text:
        raise _BadValue("importo", "an empty value is not an amount", fix, value)
    digits = _CURRENCY.sub("", text).replace(" ", "").replace("\u00a0", "")
    negative = digits[:1] == "-"
    if digits[:1] in ("-", "+"):
        digits = digits[1:]
    if not _AMOUNT.fullmatch(digits):
        raise _BadValue("importo", f'"{text}" is not an amount', fix, value)
    whole, fraction = digits, ""
    if "." in digits or "," in digits:
        separators = [char for char in digits if char in ".,"]
        last = separators[-1]
        if len(set(separators)) == 2 or separators.count(last) == 1:
            # The last separator is the decimal one; any other groups the thousands.
            whole, fraction = digits.rsplit(last, 1)
            grouping = "." if last == "," else ","
            if separators.count(last) > 1 or (grouping in whole and not _grouped(whole, grouping)):
                raise _BadValue("importo", f'"{text}" is not an amount', fix, value)
            whole = whole.replace(grouping, "")
            if len(separators) == 1 and len(fraction) == 3 and whole != "0" and len(whole) <= 3:
                raise _BadValue(
                    "importo",
                    f'"{text}" is ambiguous ({_format_cents(int(whole + fraction) * 100)} € '
                    f"or {whole},{fraction} €?)",
                    "write the amount with a decimal comma and no thousands separator, "
                    "e.g. 1234,00",
                    value,
                )
        elif _grouped(digits, last):  # 1.234.567: thousands only
            whole = digits.replace(last, "")
        else:
            raise _BadValue("importo", f'"{text}" is not an amount', fix, value)
    # Round half up on the third decimal: only that digit decides.
    cents = int(whole) * 100 + int(fraction[:2].ljust(2, "0"))
    if len(fraction) > 2 and fraction[2] >= "5":
        cents += 1
    return _format_cents(-cents if negative else cents)


def _grouped(number: str, separator: str) -> bool:
    groups = number.split(separator)
    return (
        bool(_GROUPS.fullmatch(groups[0]))
        and len(groups[0]) <= 3
        and all(len(group) == 3 for group in groups[1:])
    )


class _Refused(TemplateNotFound):
    """A template name that points outside the allowed folders."""


class _Loader(BaseLoader):
    """Templates from the campaign folder, then the shared folder; nothing else."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = roots

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool] | None]:
        for root in self.roots:
            try:
                _, real = resolve_inside(root, template)
            except PathProblem as exc:
                raise _Refused(template, f'"{template}" {exc}') from None
            if os.path.isfile(real):
                try:
                    with open(real, encoding="utf-8-sig") as file:
                        return file.read(), real, None
                except UnicodeDecodeError:
                    message = f'"{template}" is not UTF-8 text; save it as UTF-8'
                    raise _Refused(template, message) from None
        raise TemplateNotFound(template)


def _roots(spec: CampaignSpec) -> list[str]:
    roots = [real_root(spec.folder)]
    if spec.shared_templates is not None:
        roots.append(real_root(spec.shared_templates))
    return roots


def _environment(spec: CampaignSpec, *, autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=_Loader(_roots(spec)),
        undefined=StrictUndefined,
        autoescape=autoescape,
        auto_reload=False,  # compiled once: never stat a template again while rendering
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data"] = data
    env.filters["importo"] = importo
    return env


def _unsafe(ast: nodes.Template) -> Iterator[tuple[int, str]]:
    """``(line, expression)`` of every attribute or item starting with ``_``."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            first = node.args[0]
            name = first.value if isinstance(first, nodes.Const) else None
        if isinstance(name, str) and name.startswith("_"):
            yield node.lineno, name


def _stored_names(ast: nodes.Template) -> set[str]:
    names = {node.name for node in ast.find_all(nodes.Name) if node.ctx in ("store", "param")}
    return names | {node.name for node in ast.find_all(nodes.Macro)}


def _name_uses(ast: nodes.Template, loads: Counter[str], guarded: Counter[str]) -> None:
    """Count the reads of each name, and those guarded by ``|default``.

    A name whose every read is guarded, or that is tested with ``is defined``, is
    optional: a row may lack it.
    """
    for name in ast.find_all(nodes.Name):
        if name.ctx == "load":
            loads[name.name] += 1
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        if not isinstance(node.node, nodes.Name):
            continue
        if isinstance(node, nodes.Filter) and node.name in ("default", "d"):
            guarded[node.node.name] += 1
        elif isinstance(node, nodes.Test) and node.name in ("defined", "undefined"):
            guarded[node.node.name] += 10**9  # tested: the template handles its absence


def _tested_names(ast: nodes.Template) -> set[str]:
    """The names read in the condition of an ``{% if %}`` or of ``a if x else b``: the
    template itself decides what a row where they are empty shows."""
    names: set[str] = set()
    for node in ast.find_all((nodes.If, nodes.CondExpr)):
        assert isinstance(node, nodes.If | nodes.CondExpr)
        test = node.test
        if isinstance(test, nodes.Name):
            names.add(test.name)
        names |= {name.name for name in test.find_all(nodes.Name)}
    return names


def _filter_arguments(ast: nodes.Template) -> dict[str, set[str]]:
    """Filter name → the variables given to it (through other filters too)."""
    found: dict[str, set[str]] = {}
    for node in ast.find_all(nodes.Filter):
        if node.name not in FILTERS:
            continue
        inner: nodes.Node | None = node.node
        while isinstance(inner, nodes.Filter):
            inner = inner.node
        if isinstance(inner, nodes.Name):
            found.setdefault(node.name, set()).add(inner.name)
    return found


def _syntax(exc: TemplateSyntaxError) -> str:
    message = (exc.message or "invalid syntax").rstrip(".")
    if message.startswith("No filter named"):
        return f"{message}; the filters for dates and amounts are data and importo"
    return f"{message}; fix the syntax there"


def _security_message(exc: SecurityError) -> str:
    text = str(exc).rstrip(".")
    for phrase in (" is unsafe", " is not safely callable"):
        if text.endswith(phrase):
            text = text[: -len(phrase)]
            break
    return f"templates are data, not code: {text} is not allowed"


class Renderer:
    """The campaign's subject and body, compiled once, rendered for one row at a time.

    Raises :class:`CampaignError` listing every template problem: a syntax error, a
    template that is not found or lies outside the allowed folders, or one that reaches
    Python internals. ``variables`` holds the merge fields each template uses (the
    templates it extends and includes too); ``printed`` those of them it never tests
    (``{% if x %}``, ``x if y else z``): an empty one leaves a gap in the message
    (``Gentile Niccolò ,``).
    """

    def __init__(self, spec: CampaignSpec) -> None:
        self.spec = spec
        self._roots = _roots(spec)
        self.variables: dict[TemplateKind, frozenset[str]] = {}
        self.printed: dict[TemplateKind, frozenset[str]] = {}
        self._filter_vars: dict[tuple[TemplateKind, str], tuple[str, ...]] = {}
        problems: list[str] = []
        subject_env = _environment(spec, autoescape=False)
        body_env = _environment(spec, autoescape=True)
        subject = self._compile(subject_env, "subject", spec.subject, spec.subject_file, problems)
        body = self._compile(body_env, "body", spec.body, spec.body_file, problems)
        if problems:
            raise CampaignError(problems)
        assert subject is not None and body is not None
        self._subject: Template = subject
        self._body: Template = body

    def _name(self, path: os.PathLike[str] | None) -> str | None:
        if path is None:
            return None
        real = os.fspath(path)
        for root in self._roots:
            if real.startswith(root.rstrip(os.sep) + os.sep):
                return os.path.relpath(real, root).replace(os.sep, "/")
        return os.path.basename(real)

    def _compile(
        self,
        env: Environment,
        kind: TemplateKind,
        source: str,
        path: os.PathLike[str] | None,
        problems: list[str],
    ) -> Template | None:
        name = self._name(path)
        label = f"{kind} template" + (f" ({name})" if name else "")
        template: Template | None = None
        asts: list[tuple[str, nodes.Template]] = []
        try:
            ast = env.parse(source, name, os.fspath(path) if path else None)
            asts.append((label, ast))
            code = env.compile(ast, name, os.fspath(path) if path else None)
            # A plain dict of the globals: jinja2 copies them into every render's context,
            # and copying its default ChainMap costs about a fifth of a small render.
            globals_ = dict(env.make_globals(None))
            template = env.template_class.from_code(env, code, globals_, None)
        except TemplateSyntaxError as exc:
            problems.append(f"{label}, line {exc.lineno}: {_syntax(exc)}")
            return None
        seen: set[str] = set()
        for used_by, ast in asts:
            for reference in find_referenced_templates(ast):
                if reference is None or reference in seen:
                    continue
                seen.add(reference)
                where = f'template "{reference}" (used by the {used_by})'
                try:
                    source_, filename, _ = env.loader.get_source(env, reference)  # type: ignore[union-attr]
                    asts.append((where, env.parse(source_, reference, filename)))
                    env.get_template(reference)  # compiled now, and cached for every row
                except _Refused as exc:
                    problems.append(f"{used_by}: {exc.message}")
                except TemplateNotFound:
                    shared = self.spec.shared_templates
                    problems.append(f"{used_by}: {template_not_found(reference, shared)}")
                except TemplateSyntaxError as exc:
                    problems.append(f"{where}, line {exc.lineno}: {_syntax(exc)}")
        variables: set[str] = set()
        stored: set[str] = set()
        tested: set[str] = set()
        loads: Counter[str] = Counter()
        guarded: Counter[str] = Counter()
        if kind == "subject":
            for data_node in asts[0][1].find_all(nodes.TemplateData):
                if "\n" in data_node.data or "\r" in data_node.data:
                    problems.append(
                        f"{label}, line {data_node.lineno}: a line break; a subject is one "
                        "line, write it on one line"
                    )
                    break
        for where, ast in asts:
            for line, attribute in _unsafe(ast):
                problems.append(
                    f'{where}, line {line}: templates are data, not code: "{attribute}" is not '
                    "allowed; use only the CSV columns, plain Jinja and the data/importo filters"
                )
            variables |= find_undeclared_variables(ast)
            stored |= _stored_names(ast)
            tested |= _tested_names(ast)
            _name_uses(ast, loads, guarded)
            for filter_name, names in _filter_arguments(ast).items():
                key = (kind, filter_name)
                self._filter_vars[key] = tuple(sorted({*self._filter_vars.get(key, ()), *names}))
        optional = {name for name, count in guarded.items() if count >= loads[name]}
        self.variables[kind] = frozenset(variables - stored - optional - set(env.globals))
        self.printed[kind] = self.variables[kind] - tested
        return template

    def render(self, fields: Mapping[str, str]) -> tuple[str, str]:
        """``(subject, html body)`` for one row's ``fields``; raises :class:`RenderError`."""
        try:
            subject = self._subject.render(fields)
        except Exception as exc:
            raise self._error(exc, "subject", fields) from None
        subject = subject.strip()
        if "\n" in subject or "\r" in subject:
            raise self._line_break(fields)
        if not subject:
            raise RenderError(
                None, "subject", "the subject is empty for this row; fill in the cells it uses"
            )
        return subject, self.body(fields)

    def body(self, fields: Mapping[str, str]) -> str:
        """The html body alone (the sender has the subject rendered at load time)."""
        try:
            return self._body.render(fields)
        except Exception as exc:
            raise self._error(exc, "body", fields) from None

    def _line_break(self, fields: Mapping[str, str]) -> RenderError:
        for variable in sorted(self.variables["subject"]):
            value = fields.get(variable)
            if isinstance(value, str) and ("\n" in value or "\r" in value):
                return RenderError(
                    variable,
                    "subject",
                    f'the subject would break across lines: "{variable}" holds a line break; '
                    "remove it from the cell",
                )
        return RenderError(
            None,
            "subject",
            "the subject would break across lines; a subject is one line, "
            "remove the line break from the subject template",
        )

    def _error(self, exc: Exception, kind: TemplateKind, fields: Mapping[str, str]) -> RenderError:
        if isinstance(exc, _BadValue):
            variable = self._guess(kind, exc.filter_name, exc.value, fields)
            on = f' on "{variable}"' if variable else ""
            message = f"{exc.problem} ({exc.filter_name} filter{on} in {kind} template); {exc.fix}"
            return RenderError(variable, kind, message)
        if isinstance(exc, SecurityError):
            return RenderError(None, kind, f"{_security_message(exc)} in {kind} template")
        if isinstance(exc, UndefinedError):
            found = _UNDEFINED.fullmatch(str(exc))
            if found:
                return RenderError(
                    found[1], kind, f'undefined variable "{found[1]}" in {kind} template'
                )
            return RenderError(None, kind, f"{exc} in {kind} template")
        return RenderError(None, kind, f"{kind} template failed: {type(exc).__name__}: {exc}")

    def _guess(
        self, kind: TemplateKind, filter_name: str, value: object, fields: Mapping[str, str]
    ) -> str | None:
        """The variable whose value a filter refused, when it can be told."""
        candidates = self._filter_vars.get((kind, filter_name), ())
        if len(candidates) == 1:
            return candidates[0]
        for candidate in candidates:
            if fields.get(candidate) == value:
                return candidate
        return None


def referenced_sources(spec: CampaignSpec) -> list[tuple[str, str]]:
    """``(name, source)`` of every template the subject and body extend or include,
    by constant name, recursively; those that cannot be read are left out."""
    env = _environment(spec, autoescape=True)
    assert env.loader is not None
    found: dict[str, str] = {}
    pending: list[str] = [spec.subject, spec.body]
    while pending:
        try:
            ast = env.parse(pending.pop())
        except TemplateSyntaxError:
            continue
        for reference in find_referenced_templates(ast):
            if reference is None or reference in found:
                continue
            try:
                source = env.loader.get_source(env, reference)[0]
            except TemplateNotFound:
                continue
            found[reference] = source
            pending.append(source)
    return sorted(found.items())
