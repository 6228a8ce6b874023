"""Blueprint query parameters, translated into a query for Pony.

``GET /user?where={"age":{">":30}}&sort=name DESC&limit=10`` goes through three pure steps, none of which
touches a socket, a request object or a database:

1. :func:`parse_find` reads the parameters as Sails' blueprints do (``where`` as JSON or an object, or
   else every other parameter as an equality; ``limit``, ``skip``, ``sort``, ``select``, ``omit``,
   ``populate``) and returns a :class:`Criteria`: validated against the model's :class:`Field`\\ s, values
   converted to the attributes' types, the ``where`` clause normalized. Anything wrong raises
   :class:`UsageError`, which the blueprint answers with Sails' 400 ``E_INVALID_CRITERIA`` body.
2. :func:`to_pony` turns a ``where`` clause into the source of a lambda and a dict of its parameters, and
   :func:`order_by` turns a sort into the source of a ``sort_by`` lambda.
3. :func:`apply` puts both, plus ``limit`` and ``skip``, on a Pony query.

Safety by construction
    Besides Python's operators and constants, the lambda source only holds the names ``r``, ``desc`` and
    ``len``, attribute names taken from :class:`Field` (checked to be identifiers), and small integers
    trisails computed itself (slice offsets, lengths). Every value a client sent travels as a parameter
    (``p0``, ``p1``, ...), which Pony binds as a SQL parameter. The source depends on the *shape* of the
    query only, so Pony translates each shape once and reuses the translation for other values.

Normal form of a ``where`` clause (what :attr:`Criteria.where` holds)
    ``{}`` matches every record; ``{"or": []}`` matches none; ``{"and": [...]}`` and ``{"or": [...]}``
    combine two or more clauses; ``{"age": 30}`` is an equality (``null`` included); ``{"age": {">": 30}}``
    holds exactly one modifier, by its canonical name (``<``, ``<=``, ``>``, ``>=``, ``!=``, ``in``,
    ``nin``, ``contains``, ``startsWith``, ``endsWith``, ``like``). Values have the attribute's Python type.

Semantics worth knowing
    * ``!=`` and ``nin`` match records whose value is ``null``, as ``!==`` does in JavaScript (and in
      sails-disk, Sails' development adapter). Plain SQL would leave those records out.
    * A collection (``to_many``) can be filtered by the primary keys of its records: ``{"pets": 7}`` means
      "has the pet 7", ``{"pets": {"in": [7, 8]}}`` "has one of them". Waterline refuses both.
    * ``contains``, ``startsWith`` and ``endsWith`` look for the text as it is (``%`` and ``_`` are not
      wildcards there); case sensitivity is the database's, as Pony queries it (case-sensitive on SQLite,
      where Pony turns on ``case_sensitive_like``). An empty search text matches everything, as in Waterline.
    * ``like`` is SQL's: ``%`` is any run of characters, ``_`` exactly one, and a backslash makes the next
      character literal. Pony's query language has no LIKE, so a pattern becomes prefix, suffix, length,
      substring and slice tests that mean exactly the same thing. That works for every pattern with at
      most one literal run between its first and last ``%`` (``a%b``, ``%a%``, ``a_c%``, ``%x%y``);
      patterns like ``%a%b%`` (two runs whose order matters) are refused with a :class:`UsageError`.
      The tests are checked against SQL LIKE on SQLite; other databases run Pony's own slice translation.
    * Without a ``sort``, records come by primary key, as Waterline sorts them; with one, the primary key
      breaks ties, so pages never overlap.

Where trisails differs from Sails on purpose: a malformed ``where`` is a 400 (Sails throws, which makes
a 500); unknown names in ``populate`` are refused (Sails ignores them); ``sort`` also accepts
``{"name": "DESC"}`` and ``"name DESC, age"``; a ``where`` that is not an object is refused (Waterline
reads a bare value as a primary key); and a clause may hold at most :data:`MAX_VALUES` values and
:data:`MAX_DEPTH` levels of ``or``/``and``, so one request cannot build a query SQLite refuses to run.
"""

from __future__ import annotations

import json
import keyword
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NoReturn

from pony.orm import desc

from .._errors import TrisailsError
from ..protocol.virtual import MAX_DEPTH as MAX_JSON_DEPTH
from ..protocol.virtual import nested_deeper_than

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "MODIFIERS",
    "QUERY_OPTIONS",
    "Criteria",
    "Field",
    "UsageError",
    "apply",
    "order_by",
    "parse_find",
    "parse_where",
    "to_pony",
]

#: The parameters that shape a find rather than filter it; with no ``where``, every other one filters.
QUERY_OPTIONS = ("limit", "skip", "sort", "populate", "select", "omit")

#: The modifiers a constraint can use, by their Sails 1 names.
MODIFIERS = ("<", "<=", ">", ">=", "!=", "in", "nin", "contains", "startsWith", "endsWith", "like")

#: The most values one ``where`` clause may hold; ``!=``, ``nin`` and each test of a ``like`` count one more.
#: Each is a SQL parameter or test, and SQLite refuses expressions more than 1000 deep.
MAX_VALUES = 500

#: The deepest nesting of ``or`` and ``and`` one ``where`` clause may use.
MAX_DEPTH = 10

Direction = Literal["ASC", "DESC"]

# Older spellings Waterline still understands, and what they mean today.
_ALIASES = {
    "lessThan": "<",
    "lessThanOrEqual": "<=",
    "greaterThan": ">",
    "greaterThanOrEqual": ">=",
    "not": "!=",
    "!": "!=",
    "!==": "!=",
}
_COMPARISONS = ("<", "<=", ">", ">=")
_NOTHING: dict[str, Any] = {"or": []}  # compared with, never handed out: callers may change what they get
_MAX_INT = 2**63 - 1  # what SQL databases store in an integer column
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_DIGITS = re.compile(r"\s*(\d{1,19})\s*", re.ASCII)
_DEV_TIP = (
    "**The following additional tip will not be shown in production**:  Tip: Check your client-side code to "
    "make sure that the request data it sends matches the expectations of the corresponding attribues in "
    "your model.  Also check that your client-side code sends data for every required attribute."
)


@dataclass(frozen=True)
class Field:
    """What the parser needs to know about one attribute of a model."""

    name: str
    """The name on the wire, in requests and records (``"createdAt"``)."""
    column: str
    """The Pony attribute's name (``"created_at"``); it must be a Python identifier."""
    kind: Literal["scalar", "to_one", "to_many"]
    """A plain value, a reference to one record (Pony ``Required``/``Optional`` of an entity), or a ``Set``."""
    python_type: type
    """The type of the value: ``str``, ``int``, ``float``, ``bool``, ...; for a relation, the related pk's."""
    related_pk: str = "id"
    """For a relation, the Pony name of the related entity's primary key."""

    def __post_init__(self) -> None:
        if self.kind not in ("scalar", "to_one", "to_many"):
            raise ValueError(f"Field kind must be 'scalar', 'to_one' or 'to_many', not {self.kind!r}")
        for name in (self.column, self.related_pk):
            # the one check that keeps attribute names from injecting code into the lambda source
            if not name.isidentifier() or keyword.iskeyword(name):
                raise ValueError(f"{name!r} is not a Python identifier, so it cannot name a Pony attribute")


class UsageError(TrisailsError):
    """A blueprint request's parameters cannot make a query; Sails answers ``400 E_INVALID_CRITERIA``.

    :attr:`parameter` names the request parameter at fault (``"where"``, ``"sort"``, ... or, when the
    attributes to filter by came as parameters of their own, that attribute), and :attr:`details` says
    what is wrong with it, for the client.
    """

    http_status = 400
    """An action that lets a UsageError escape answers 400 with :meth:`body`, not 500."""

    def __init__(self, parameter: str, details: str, *, code: str = "E_INVALID_CRITERIA") -> None:
        super().__init__(details)
        self.parameter = parameter
        self.details = details
        self.code = code
        """Sails' error code: ``E_INVALID_CRITERIA`` for a query, ``E_INVALID_NEW_RECORD`` or
        ``E_INVALID_VALUES_TO_SET`` for values a model refuses, ``E_UNIQUE`` for a taken unique value."""

    def response_body(self, method: str, path: str, *, production: bool) -> dict[str, str]:
        """The JSON body Sails' ``formatUsageError`` gives, key order included; the tip is dev-only."""
        message = (
            f"The server could not fulfill this request (`{method} {path}`) due to a problem with the "
            "parameters that were sent.  See the `details` for more info."
        )
        if not production:
            message += "  " + _DEV_TIP
        return {"code": self.code, "details": self.details, "message": message}


@dataclass(frozen=True)
class Criteria:
    """A find, validated: what to match, in which order, how many, and what to send of each record."""

    where: Mapping[str, Any]
    """The ``where`` clause in normal form, over wire names (see the module docs)."""
    limit: int | None
    """At most this many records; ``None`` for no limit (only when the caller's default is ``None``)."""
    skip: int
    sort: tuple[tuple[str, Direction], ...]
    """``(wire name, direction)`` pairs; empty for the default order (by primary key)."""
    select: tuple[str, ...] | None
    """Only these attributes (the caller adds the primary key), or ``None`` for all."""
    omit: tuple[str, ...] | None
    """Every attribute but these, or ``None``; never set together with :attr:`select`."""
    populate: tuple[str, ...] | None
    """The associations to populate: ``None`` for all of them (the default), ``()`` for none."""


def parse_find(params: Mapping[str, Any], fields: Mapping[str, Field], *, default_limit: int | None = 30) -> Criteria:
    """Read a find blueprint's parameters (``req.all_params()``) into :class:`Criteria`.

    ``fields`` maps wire names to fields. Query-string values are strings (or lists of strings, for a
    repeated name) and are converted where Sails converts them (``"30"`` is 30 for a number, ``"true"``
    true for a boolean); body values are JSON. Raises :class:`UsageError` for anything that cannot make a
    query, naming the parameter.
    """
    where = params.get("where")
    if where is None:  # as in Sails, the other parameters are the where clause
        implicit = {name: value for name, value in params.items() if name not in QUERY_OPTIONS and name != "where"}
        parsed_where = _WhereParser(fields, parameter=None).clause(implicit)
    else:
        parsed_where = parse_where(where, fields)
    select = _names(params.get("select"), "select", fields)
    omit = _names(params.get("omit"), "omit", fields)
    if select is not None and omit is not None:
        raise UsageError(
            "omit", "Cannot use both `select` and `omit`: send the attributes to keep, or the ones to leave out."
        )
    return Criteria(
        where=parsed_where,
        limit=_natural(params.get("limit"), "limit", default_limit),
        skip=_natural(params.get("skip"), "skip", 0) or 0,
        sort=_sort(params.get("sort"), fields),
        select=select,
        omit=omit,
        populate=_populate(params.get("populate"), fields),
    )


def parse_where(where: Any, fields: Mapping[str, Field], *, parameter: str = "where") -> dict[str, Any]:
    """Validate a ``where`` clause (a JSON string or an object) and return it in normal form.

    Normalizing a clause already in normal form gives it back unchanged. Raises :class:`UsageError`
    naming ``parameter``.
    """
    if isinstance(where, str):
        where = _json(where, parameter)
    return _WhereParser(fields, parameter=parameter).clause(where)


def to_pony(where: Mapping[str, Any], fields: Mapping[str, Field]) -> tuple[str, dict[str, Any]]:
    """The source of a Pony lambda matching ``where``, and the parameters it uses.

    For example ``{"age": {">": 30}}`` gives ``("lambda r: r.age > p0", {"p0": 30})``. Apply it with
    ``query.filter(source, {}, params)`` (the parameters are the lambda's locals; Pony 0.7.20's
    ``Entity.select(source, ...)`` cannot take a string with locals). The clause is normalized first, so
    anything :func:`parse_where` refuses raises :class:`UsageError` here too; the empty clause gives
    ``lambda r: True``.
    """
    compiler = _Compiler(fields)
    return f"lambda r: {compiler.clause(parse_where(where, fields))}", compiler.params


def order_by(sort: tuple[tuple[str, Direction], ...], fields: Mapping[str, Field]) -> str:
    """The source of a Pony ``sort_by`` lambda for ``sort``, primary key last (or alone, by default).

    ``(("name", "DESC"), ("age", "ASC"))`` gives ``"lambda r: (desc(r.name), r.age, r)"``, where ``r``
    alone stands for the primary key. Apply it with ``query.sort_by(source, {"desc": pony.orm.desc}, {})``:
    Pony looks ``desc`` up in the globals it is given. Records with no related record come first when
    sorting by an association, as SQLite and MySQL order ``NULL``.
    """
    terms = []
    for name, direction in sort:
        field = _sortable(name, fields)
        terms.append(f"desc(r.{field.column})" if _direction(direction) == "DESC" else f"r.{field.column}")
    return f"lambda r: ({', '.join([*terms, 'r'])})" if terms else "lambda r: r"


def apply(query: Any, criteria: Criteria, fields: Mapping[str, Field]) -> Any:
    """Filter, sort and page a Pony query (``Entity.select()``) as ``criteria`` says; returns the new query.

    Run it, as any Pony query, inside a ``db_session``. ``select``, ``omit`` and ``populate`` are left to
    the caller, which shapes the records it sends.
    """
    if criteria.where:
        source, params = to_pony(criteria.where, fields)
        query = query.filter(source, {}, params)
    query = query.sort_by(order_by(criteria.sort, fields), {"desc": desc}, {})
    if criteria.limit is not None or criteria.skip:
        query = query.limit(criteria.limit, offset=criteria.skip)
    return query


# --- the where clause ---------------------------------------------------------------------------------


class _WhereParser:
    """Validates a where clause and builds its normal form, counting values against :data:`MAX_VALUES`.

    With ``parameter=None`` the clause came from separate request parameters, and an error names the
    top-level attribute it is about instead of ``where``.
    """

    def __init__(self, fields: Mapping[str, Field], parameter: str | None) -> None:
        self.fields = fields
        self.parameter = parameter
        self.key = parameter or "where"
        self.values = 0

    def fail(self, details: str) -> NoReturn:
        raise UsageError(self.key, details)

    def clause(self, where: Any, depth: int = 0) -> dict[str, Any]:
        if not isinstance(where, Mapping):
            self.fail(f"The `where` clause should be a dictionary (a JSON object), but it is {_kind_of(where)}.")
        if depth > MAX_DEPTH:
            self.fail(f"The `where` clause nests `or` and `and` more than {MAX_DEPTH} levels deep.")
        parts = []
        for key, rhs in where.items():
            if depth == 0 and self.parameter is None:
                self.key = str(key)
            if key in ("or", "and"):
                parts.append(self.predicate(key, rhs, depth))
            else:
                parts.append(self.constraint(self.field(key), rhs))
        return _all_of(parts)

    def predicate(self, key: str, rhs: Any, depth: int) -> dict[str, Any]:
        if not isinstance(rhs, list):
            self.fail(f"`{key}` takes an array of dictionaries, but got {_kind_of(rhs)}.")
        members = []
        for item in rhs:
            if not isinstance(item, Mapping):
                self.fail(f"Each item of an `{key}` array should be a dictionary, but one is {_kind_of(item)}.")
            members.append(self.clause(item, depth + 1))
        return _any_of(members) if key == "or" else _all_of(members)

    def field(self, name: Any) -> Field:
        field = self.fields.get(name) if isinstance(name, str) else None
        if field is None:
            self.fail(f"Cannot filter by `{_show_name(name)}`: it is not a recognized attribute for this model.")
        return field

    def constraint(self, field: Field, rhs: Any) -> dict[str, Any]:
        if isinstance(rhs, list):  # Waterline's shorthand for `in`
            return self.modifier(field, "in", rhs)
        if isinstance(rhs, Mapping):
            if not rhs:
                self.fail(
                    f"The constraint for `{field.name}` is an empty dictionary; "
                    'give it a modifier, like `{">": 30}`.'
                )
            return _all_of([self.modifier(field, key, value) for key, value in rhs.items()])
        if rhs is None and field.kind == "to_many":
            self.fail(f"`{field.name}` is a collection: filter it by the id of one of its records, not by `null`.")
        return {field.name: self.value(field, rhs)}

    def modifier(self, field: Field, key: Any, value: Any) -> dict[str, Any]:
        name = field.name
        modifier = _ALIASES.get(key, key) if isinstance(key, str) else key
        if modifier == "!=" and isinstance(value, list):
            modifier = "nin"
        if modifier not in MODIFIERS:
            self.fail(
                f"Unrecognized modifier (`{_show_name(key)}`) within the constraint for `{name}`; "
                f"the modifiers are {', '.join(f'`{m}`' for m in MODIFIERS)}."
            )
        if field.kind == "to_many" and modifier != "in":
            self.fail(
                f"`{name}` is a collection: filter it by the ids of its records (equality or `in`), not with `{key}`."
            )
        if modifier in ("in", "nin"):
            return self.membership(field, modifier, value)
        if isinstance(value, (list, Mapping)):
            self.fail(f"The `{key}` modifier for `{name}` takes one value, but got {_kind_of(value)}.")
        if modifier == "!=":
            self.count(0 if value is None else 1)  # `!= x` is two tests: different, or null
            return {name: {"!=": self.value(field, value)}}
        if value is None:
            self.fail(f"`null` cannot be used with `{key}` (for `{name}`); use `{{\"{name}\": null}}` or `!=` instead.")
        if modifier in _COMPARISONS:
            if _value_type(field.python_type) in (bool, uuid.UUID):
                self.fail(f"`{name}` cannot be compared with `{key}`: its values have no order.")
            return {name: {modifier: self.value(field, value)}}
        return self.search(field, modifier, value)

    def membership(self, field: Field, modifier: str, items: Any) -> dict[str, Any]:
        if not isinstance(items, list):
            self.fail(f"An `{modifier}` modifier takes an array, but the one for `{field.name}` is {_kind_of(items)}.")
        values = []
        for item in items:
            if item is None or isinstance(item, (list, Mapping)):
                self.fail(
                    f"An `{modifier}` array holds plain values, but the one for `{field.name}` holds {_kind_of(item)}; "
                    f"to match `null`, use `or` with `{{\"{field.name}\": null}}`."
                )
            value = self.value(field, item)
            if value not in values:
                values.append(value)
        if not values:
            return {"or": []} if modifier == "in" else {}
        self.count(1 if modifier == "nin" else 0)  # not in, or null
        return {field.name: {modifier: values}}

    def search(self, field: Field, modifier: str, value: Any) -> dict[str, Any]:
        if field.kind != "scalar" or _value_type(field.python_type) is not str:
            self.fail(f"`{modifier}` searches text, and `{field.name}` is not a string attribute.")
        if modifier == "like" and (not isinstance(value, str) or not value):
            self.fail(
                f"The `like` modifier for `{field.name}` takes a non-empty string pattern "
                "(`%` for any run of characters, `_` for exactly one), "
                f"but got {_kind_of(value)}."
            )
        text = self.value(field, value)
        if modifier == "like":
            try:
                plan = _LikePlan.of(text)
            except ValueError as error:
                self.fail(f"The `like` pattern for `{field.name}` cannot be used: {error}.")
            self.count(len(plan.tests))
            if plan.matches_any_text:
                return {}
        elif text == "":  # Waterline: an empty search "would match ANYTHING", so it does
            return {}
        return {field.name: {modifier: text}}

    def value(self, field: Field, value: Any) -> Any:
        """``value`` converted to the field's type; ``None`` stays ``None``."""
        self.count(1)
        if value is None:
            return None
        target = _value_type(field.python_type)
        if target is None:
            self.fail(f"Cannot filter by `{field.name}`: trisails cannot compare {field.python_type.__name__} values.")
        try:
            return _CONVERTERS[target](value)
        except ValueError as error:
            self.fail(f"{_show(value)} is not a valid value for `{field.name}`: expected {error}.")

    def count(self, values: int) -> None:
        self.values += values
        if self.values > MAX_VALUES:
            self.fail(f"The `where` clause holds more than {MAX_VALUES} values.")


def _all_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """The conjunction of normal-form clauses, itself in normal form."""
    members: list[dict[str, Any]] = []
    for clause in clauses:
        if clause == _NOTHING:
            return {"or": []}
        members.extend(clause["and"] if list(clause) == ["and"] else [clause] if clause else [])
    return {} if not members else members[0] if len(members) == 1 else {"and": members}


def _any_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """The disjunction of normal-form clauses, itself in normal form."""
    members: list[dict[str, Any]] = []
    for clause in clauses:
        if not clause:
            return {}
        members.extend(clause["or"] if list(clause) == ["or"] else [clause])
    return members[0] if len(members) == 1 else {"or": members}


# --- values -------------------------------------------------------------------------------------------
# Each converter takes a JSON value (or a value already of its type, so normalizing is idempotent) and
# returns it as the type, or raises ValueError saying what it expected. Query strings only carry text,
# so text converts to numbers and booleans where it reads as one, as Waterline's loose typing does.


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in ("true", "false", "1", "0"):
        return value in ("true", "1")
    raise ValueError("a boolean (`true` or `false`)")


def _to_int(value: Any) -> int:
    number = _number(value, "an integer")
    if number != number.to_integral_value() or not -_MAX_INT - 1 <= number <= _MAX_INT:
        raise ValueError("an integer")
    return int(number)


def _to_float(value: Any) -> float:
    if isinstance(value, float) and math.isfinite(value):
        return value
    return float(_number(value, "a number"))


def _to_decimal(value: Any) -> Decimal:
    return _number(value, "a number")


def _number(value: Any, expected: str) -> Decimal:
    """A finite number from a number or a short numeric text (read exactly: no float rounding)."""
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40 or not _NUMBER.fullmatch(text):
            raise ValueError(expected)
        value = text
    elif not isinstance(value, (int, float, Decimal)):
        raise ValueError(expected)
    try:
        number = Decimal(value) if isinstance(value, (str, int, Decimal)) else Decimal(repr(value))
    except (InvalidOperation, ValueError):
        raise ValueError(expected) from None
    if not number.is_finite() or abs(number.adjusted()) > 400:
        raise ValueError(expected)
    return number


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if not isinstance(value, str):
        raise ValueError("a string")
    if "\x00" in value:  # PostgreSQL cannot store it; refused everywhere, so both databases agree
        raise ValueError("text without NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry but no database stores
        raise ValueError("valid Unicode text") from None
    return value


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError("an ISO 8601 date and time") from None


def _to_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError("an ISO 8601 date") from None


def _to_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            pass
    raise ValueError("a UUID")


_CONVERTERS: dict[type, Any] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    Decimal: _to_decimal,
    str: _to_str,
    datetime: _to_datetime,
    date: _to_date,
    uuid.UUID: _to_uuid,
}


def _value_type(python_type: type) -> type | None:
    """The converter's type for an attribute's type (``LongStr`` is a ``str``), or None if unsupported."""
    for known in _CONVERTERS:  # bool before int, datetime before date
        if isinstance(python_type, type) and issubclass(python_type, known):
            return known
    return None


# --- the other parameters -----------------------------------------------------------------------------


def _natural(raw: Any, parameter: str, default: int | None) -> int | None:
    """``limit`` or ``skip``: a non-negative integer, from a number or digits."""
    if raw is None:
        return default
    value: Any = raw
    digits = _DIGITS.fullmatch(raw) if isinstance(raw, str) else None
    if digits:
        value = int(digits.group(1))
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise UsageError(parameter, f"`{parameter}` should be a non-negative integer, but got {_show(raw)}.")
    return value


def _sort(raw: Any, fields: Mapping[str, Field]) -> tuple[tuple[str, Direction], ...]:
    """``sort``: ``"name DESC, age"``, ``{"name": "DESC"}``, ``[{"name": "ASC"}]``, ``{"age": -1}``; JSON or not."""
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.startswith(("[", "{", '"')):
            raw = _json(raw, "sort")
    if raw is None or raw in ("", [], {}):
        return ()
    directives: list[tuple[Any, Any]] = []
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, str):
            for part in item.split(","):
                words = part.split()
                if len(words) > 2:
                    raise UsageError(
                        "sort",
                        f"Cannot sort by {_show(part.strip())}: write an attribute and a direction, like `name DESC`.",
                    )
                if words:
                    directives.append((words[0], words[1] if len(words) == 2 else "ASC"))
        elif isinstance(item, Mapping) and item:
            directives.extend(item.items())
        else:
            raise UsageError("sort", f"Cannot sort by {_show(item)}: use `name DESC`, or `[{{\"name\": \"DESC\"}}]`.")
    sort: list[tuple[str, Direction]] = []
    for name, direction in directives:
        field = _sortable(name, fields)
        if any(field.name == done for done, _ in sort):
            raise UsageError("sort", f"Cannot sort by `{field.name}` twice.")
        sort.append((field.name, _direction(direction)))
    return tuple(sort)


def _sortable(name: Any, fields: Mapping[str, Field]) -> Field:
    field = fields.get(name) if isinstance(name, str) else None
    if field is None:
        raise UsageError(
            "sort", f"Cannot sort by `{_show_name(name)}`: it is not a recognized attribute for this model."
        )
    if field.kind == "to_many":
        raise UsageError("sort", f"Cannot sort by `{field.name}`: it is a collection.")
    return field


def _direction(direction: Any) -> Direction:
    if isinstance(direction, str) and direction.upper() in ("ASC", "DESC"):
        return "ASC" if direction.upper() == "ASC" else "DESC"
    if direction in (1, -1) and not isinstance(direction, bool):
        return "ASC" if direction == 1 else "DESC"
    raise UsageError("sort", f"{_show(direction)} is not a sort direction: use `ASC` or `DESC` (or 1 and -1).")


def _names(raw: Any, parameter: str, fields: Mapping[str, Field]) -> tuple[str, ...] | None:
    """``select`` or ``omit``: known attribute names, or None when the parameter is absent or blank."""
    names = _name_list(raw, parameter)
    for name in names or ():
        if name not in fields:
            raise UsageError(
                parameter, f"Cannot {parameter} `{_show_name(name)}`: it is not a recognized attribute for this model."
            )
    return names or None


def _populate(raw: Any, fields: Mapping[str, Field]) -> tuple[str, ...] | None:
    """``populate``: association names, ``false`` for none, absent or blank for all."""
    if raw is False or (isinstance(raw, str) and raw.strip() == "false"):
        return ()
    if raw is True:
        return None
    names = _name_list(raw, "populate")
    for name in names or ():
        field = fields.get(name)
        if field is None:
            raise UsageError(
                "populate", f"Cannot populate `{_show_name(name)}`: it is not a recognized attribute for this model."
            )
        if field.kind == "scalar":
            raise UsageError("populate", f"Cannot populate `{name}`: it is not an association.")
    return names


def _name_list(raw: Any, parameter: str) -> tuple[str, ...] | None:
    """Names from ``a,b``, ``[a,b]``, ``["a","b"]`` or a list of such strings; None if absent or blank."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            parsed = None
        raw = parsed if isinstance(parsed, list) else [raw.replace("[", "").replace("]", "")]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise UsageError(
            parameter, f"`{parameter}` should list attribute names, like `name,age`, but got {_show(raw)}."
        )
    names: list[str] = []
    for item in raw:
        for name in (part.strip() for part in item.split(",")):
            if name and name not in names:
                names.append(name)
    return tuple(names) if names or raw == [] else None


_TOO_DEEP = object()


def _json(text: str, parameter: str) -> Any:
    """JSON text a client sent in a parameter, parsed: at most :data:`MAX_JSON_DEPTH` levels deep, as a
    JSON body may be by default, so what is built from it never recurses without bound."""
    def refuse(constant: str) -> NoReturn:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except RecursionError:
        value = _TOO_DEEP
    except ValueError as error:
        raise UsageError(parameter, f"Could not parse the provided `{parameter}` as JSON: {error}.") from None
    if value is _TOO_DEEP or nested_deeper_than(value, MAX_JSON_DEPTH):
        raise UsageError(parameter, f"Could not parse the provided `{parameter}`: it is nested too deeply.")
    return value


# --- from normal form to Pony -------------------------------------------------------------------------


class _Compiler:
    """Writes a normal-form clause as the body of ``lambda r: ...``, collecting parameters as it goes."""

    def __init__(self, fields: Mapping[str, Field]) -> None:
        self.fields = fields
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def clause(self, where: Mapping[str, Any]) -> str:
        conditions = []
        for key, rhs in where.items():
            if key in ("and", "or"):
                members = [self.clause(member) for member in rhs]
                conditions.append(_join(f" {key} ", members) if members else "True" if key == "and" else "False")
            else:
                conditions.append(self.constraint(self.fields[key], rhs))
        return _join(" and ", conditions) if conditions else "True"

    def constraint(self, field: Field, rhs: Any) -> str:
        attribute = f"r.{field.column}"
        # a relation is compared by the related record's primary key; for a Set, Pony lifts it to every record's
        key = attribute if field.kind == "scalar" else f"{attribute}.{field.related_pk}"
        if not isinstance(rhs, Mapping):
            if rhs is None:
                return f"{attribute} is None"
            return f"{self.param(rhs)} in {key}" if field.kind == "to_many" else f"{key} == {self.param(rhs)}"
        ((modifier, value),) = rhs.items()
        if modifier == "!=":
            if value is None:
                return f"{attribute} is not None"
            return f"({key} != {self.param(value)} or {attribute} is None)"
        if modifier == "in" and field.kind == "to_many":
            return _join(" or ", [f"{self.param(item)} in {key}" for item in value])
        if modifier == "in":
            return f"{key} in {self.param(tuple(value))}"
        if modifier == "nin":
            return f"({key} not in {self.param(tuple(value))} or {attribute} is None)"
        if modifier in _COMPARISONS:
            return f"{key} {modifier} {self.param(value)}"
        if modifier == "contains":
            return f"{self.param(value)} in {attribute}"
        if modifier == "startsWith":
            return f"{attribute}.startswith({self.param(value)})"
        if modifier == "endsWith":
            return f"{attribute}.endswith({self.param(value)})"
        return _join(" and ", [test.source(attribute, self.param) for test in _LikePlan.of(value).tests]) or "True"


def _join(operator: str, parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + operator.join(parts) + ")"


# --- like, without LIKE -------------------------------------------------------------------------------
# A pattern splits at its `%` into segments: the first is anchored at the start of the text, the last
# at its end, and the ones between float. Each literal run of an anchored segment sits at a known
# offset, so a prefix, suffix or slice test checks it; a floating segment needs a substring test, which
# Pony can do on a slice of the text (between the anchored parts). `_` at the edges of a floating segment
# only moves where the slice starts or ends. With two floating runs their order would matter, and no
# Pony expression checks that, so such patterns are refused. A length test makes sure the parts do not
# overlap (and gives `_` its meaning).


@dataclass(frozen=True)
class _Test:
    """One test of a like plan, on the text ``t``.

    ``equals``: ``t == text``; ``startswith``/``endswith``: ``text`` at either end; ``slice``:
    ``t[start:end] == text`` (negative offsets count from the end); ``contains``: ``text`` within
    ``t[start:len(t) - end]``; ``length``: ``len(t) >= start`` (``==`` if ``exact``).
    """

    kind: Literal["equals", "startswith", "endswith", "slice", "contains", "length"]
    text: str = ""
    start: int = 0
    end: int = 0
    exact: bool = False

    def source(self, attribute: str, param: Callable[[Any], str]) -> str:
        if self.kind == "equals":
            return f"{attribute} == {param(self.text)}"
        if self.kind in ("startswith", "endswith"):
            return f"{attribute}.{self.kind}({param(self.text)})"
        if self.kind == "slice":
            return f"{attribute}[{self.start}:{self.end or ''}] == {param(self.text)}"
        if self.kind == "contains" and (self.start, self.end) == (0, 1):
            # Pony 0.7.20 reads `t[:-1]` as `t` (it takes a stop of -1 for "to the end"), so look
            # before the last two characters, or right before the last one
            text = param(self.text)
            return f"({text} in {attribute}[:-2] or {attribute}[{-len(self.text) - 1}:-1] == {text})"
        if self.kind == "contains":
            inner = f"[{self.start or ''}:{-self.end if self.end else ''}]" if self.start or self.end else ""
            return f"{param(self.text)} in {attribute}{inner}"
        return f"len({attribute}) {'==' if self.exact else '>='} {self.start}"


@dataclass(frozen=True)
class _LikePlan:
    """The tests that together mean ``LIKE pattern``, or :attr:`matches_any_text` when there are none."""

    tests: tuple[_Test, ...]

    @property
    def matches_any_text(self) -> bool:
        return not self.tests

    @staticmethod
    def of(pattern: str) -> _LikePlan:
        """Plan ``pattern`` (``\\`` makes the next character literal); ValueError if Pony cannot test it."""
        segments: list[list[str | None]] = [[]]  # characters, None for `_`
        characters = iter(pattern)
        for character in characters:
            if character == "\\":
                segments[-1].append(next(characters, "\\"))
            elif character == "%":
                segments.append([])
            else:
                segments[-1].append(None if character == "_" else character)

        if len(segments) == 1:  # no `%`: the text has exactly the pattern's length
            (whole,) = segments
            if None not in whole:
                return _LikePlan((_Test("equals", "".join(c for c in whole if c is not None)),))
            tests = [_Test("length", start=len(whole), exact=True)]
            tests += [_anchored(text, start, start + len(text)) for start, text in _runs(whole)]
            return _LikePlan(tuple(tests))

        head, *middles, tail = segments
        tests = [_anchored(text, start, start + len(text)) for start, text in _runs(head)]
        tests += [_anchored(text, start - len(tail), start + len(text) - len(tail)) for start, text in _runs(tail)]
        floating: str | None = None
        before = after = 0  # characters that must come before and after the floating run
        for segment in middles:
            literal = [index for index, character in enumerate(segment) if character is not None]
            if not literal:  # only `_`: it just needs room
                before, after = (before + len(segment), after) if floating is None else (before, after + len(segment))
                continue
            core = segment[literal[0] : literal[-1] + 1]
            if None in core:
                raise ValueError("Pony cannot look for a run with `_` inside it between two `%`")
            if floating is not None:
                raise ValueError("Pony cannot look for two runs of text, in order, between `%` wildcards")
            floating = "".join(c for c in core if c is not None)
            before += literal[0]
            after += len(segment) - literal[-1] - 1
        if floating is not None:
            tests.append(_Test("contains", floating, len(head) + before, len(tail) + after))
        # the length keeps the parts from overlapping, and counts `_`; one plain test needs no help
        minimum = len(head) + len(tail) + sum(len(segment) for segment in middles)
        if minimum and (len(tests) != 1 or any(None in segment for segment in segments)):
            tests.append(_Test("length", start=minimum))
        return _LikePlan(tuple(tests))


def _anchored(text: str, start: int, end: int) -> _Test:
    """The test for ``text`` at ``[start:end]``, offsets from the end being negative (``end`` 0 = the end)."""
    if start == 0:
        return _Test("startswith", text)
    if end == 0:
        return _Test("endswith", text)
    return _Test("slice", text, start, end)


def _runs(segment: list[str | None]) -> list[tuple[int, str]]:
    """The literal runs of a segment, with their offsets: ``a_bc`` gives ``[(0, "a"), (2, "bc")]``."""
    runs: list[tuple[int, str]] = []
    for offset, character in enumerate(segment):
        if character is None:
            continue
        if runs and runs[-1][0] + len(runs[-1][1]) == offset:
            runs[-1] = (runs[-1][0], runs[-1][1] + character)
        else:
            runs.append((offset, character))
    return runs


# --- showing values in error details ------------------------------------------------------------------


def _kind_of(value: Any) -> str:
    """How a JSON value is called in a sentence: "a string (`"x"`)", "an array", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({_show(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({_show(value)})"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a dictionary"
    return f"a {type(value).__name__}"


def _show(value: Any) -> str:
    """A value as JSON between backticks, cut short, and ASCII so any JSON encoder can send it."""
    try:
        text = json.dumps(value, ensure_ascii=True, default=str)
    except (ValueError, RecursionError):
        text = "..."
    return f"`{text if len(text) <= 60 else text[:57] + '...'}`"


def _show_name(name: Any) -> str:
    """An attribute name as the client sent it, cut short, with unencodable characters escaped."""
    text = name if isinstance(name, str) else repr(name)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 60 else text[:57] + "..."
