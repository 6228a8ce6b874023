"""One model in one app: its Pony entity, its fields on the wire, and its units of database work.

A :class:`ModelBinding` is made when the app lifts, from the model's declaration. Everything here that
touches Pony runs inside :meth:`Datastore.run <trisails.orm.datastore.Datastore.run>`, in a worker
thread; what comes back to the loop is plain data: records as dicts with wire names, and
:class:`Change`\\ s describing what a write did, which the pub-sub layer turns into messages.

Records on the wire look as Sails sends them: collections first (when populated), then the primary key,
``createdAt`` and ``updatedAt``, then the other attributes in declaration order; a to-one association
is the related record's primary key, or the related record itself when populated.
"""

from __future__ import annotations

import base64
import inspect
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time as clock_time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pony import orm

from .criteria import _CONVERTERS, Criteria, Field, UsageError, _json, _value_type, apply, parse_find, parse_where
from .model import HIDDEN_REVERSE, Model, PrimaryKey, one_way_relations

if TYPE_CHECKING:
    from .datastore import Datastore
    from .pubsub import PubSub

__all__ = ["Association", "Change", "Link", "MissingRecord", "ModelBinding", "ValidationError", "build_entities"]

#: How many records a populated collection holds, as in Sails.
POPULATE_LIMIT = 30
TIMESTAMPS = {"createdAt": "created_at", "updatedAt": "updated_at"}
NEW_RECORD = "E_INVALID_NEW_RECORD"
VALUES_TO_SET = "E_INVALID_VALUES_TO_SET"


@dataclass(frozen=True)
class Association:
    """A relation from this model to another, seen from this side."""

    alias: str
    """The attribute's name (``pets``)."""
    target: str
    """The related model's identity (``pet``)."""
    many: bool
    """A collection (Pony ``Set``) rather than one record."""
    via: str
    """The attribute on the other side that points back (``owner``)."""
    via_many: bool
    """Whether that attribute is a collection (many-to-many)."""
    one_way: bool = False
    """Declared on this side only: the other side is hidden, and is never told of changes (as in Sails)."""


@dataclass
class Link:
    """How one record's association changed in a write: the related ids it gained and lost."""

    alias: str
    added: list[Any] = field(default_factory=list)
    removed: list[Any] = field(default_factory=list)
    stolen_from: dict[Any, Any] = field(default_factory=dict)
    """For a gained record that was the only one of another parent before (one-to-many, one-to-one):
    gained id → that former parent's id."""


@dataclass
class Change:
    """What a write did to one record, for the response and the messages that follow the commit."""

    id: Any
    before: dict[str, Any] | None
    """The populated record before the write (``None`` for a create)."""
    after: dict[str, Any] | None
    """The populated record after it (``None`` for a destroy)."""
    values: dict[str, Any] = field(default_factory=dict)
    """The values set, by wire name, as stored (an update's ``data``)."""
    links: list[Link] = field(default_factory=list)


class MissingRecord(UsageError):
    """A record named by id does not exist: a 400 among new values, a 404 for add and remove."""


def now_ms() -> int:
    """Epoch milliseconds, the unit of Sails' ``createdAt``/``updatedAt``."""
    return time.time_ns() // 1_000_000


def build_entities(db: orm.Database, models: Iterable[type[Model]]) -> dict[str, Any]:
    """Define a fresh Pony entity on ``db`` for each model; returns them by identity.

    A one-way association (declared on one side only) gets its other side here: a hidden ``Set`` on
    the other model (:func:`~trisails.orm.model.one_way_relations`), which Pony needs and nobody sees."""
    models = list(models)
    one_way = one_way_relations(models)
    hidden: dict[str, dict[str, Any]] = {}
    for (owner, name), (target, reverse) in one_way.items():
        hidden.setdefault(target, {})[reverse] = orm.Set(owner, reverse=name)
    entities = {}
    for model in models:
        attrs: dict[str, Any] = {}
        if not any(isinstance(a, PrimaryKey) for a in model.attributes.values()):
            attrs["id"] = orm.PrimaryKey(int, auto=True)
        if model.timestamps:
            # size=64: milliseconds since 1970 overflow a 32-bit integer column
            attrs["created_at"] = orm.Required(int, size=64, default=0)
            attrs["updated_at"] = orm.Required(int, size=64, default=0)
            attrs["before_insert"] = _stamp_insert
            attrs["before_update"] = _stamp_update
        for name, attribute in model.attributes.items():
            one_way_reverse = one_way.get((model.__name__, name))
            attrs[name] = attribute.build(reverse=one_way_reverse[1]) if one_way_reverse else attribute.build()
        attrs.update(hidden.get(model.__name__, {}))
        if model.table:
            attrs["_table_"] = model.table
        attrs["_trisails_identity_"] = model.identity
        entities[model.identity] = type(model.__name__, (db.Entity,), attrs)
    return entities


def _stamp_insert(record: Any) -> None:
    if not record.created_at:
        record.created_at = record.updated_at = now_ms()


def _stamp_update(record: Any) -> None:
    record.updated_at = max(now_ms(), record.updated_at)


class ModelBinding:
    """A model as one app sees it: the Pony entity and the wire view of its records."""

    def __init__(self, declaration: type[Model], entity: Any, datastore: Datastore) -> None:
        self.declaration = declaration
        self.identity = declaration.identity
        self.entity = entity
        """The app's Pony entity class for this model."""
        self.datastore = datastore
        self.pubsub: PubSub  # set by the app once every binding exists
        self.models: dict[str, ModelBinding] = {}  # every binding of the app, by identity (set alongside)
        (pk,) = entity._pk_attrs_
        self.pk = pk.name
        self.pk_type = pk.py_type
        self.pk_auto = bool(pk.auto)
        self.associations: dict[str, Association] = {}
        self.fields: dict[str, Field] = {}
        """What the blueprint parameters may name: wire name → field."""
        collections: list[str] = []
        scalars: list[tuple[str, str]] = [(self.pk, self.pk)]  # (wire name, Pony name), in wire order
        if declaration.timestamps:
            scalars += list(TIMESTAMPS.items())
        for attr in entity._attrs_:
            if attr.name == self.pk or (declaration.timestamps and attr.name in TIMESTAMPS.values()):
                continue
            if attr.name.startswith(HIDDEN_REVERSE):
                continue  # the other side of another model's one-way association: not part of this model
            if not attr.is_relation:
                scalars.append((attr.name, attr.name))
                continue
            target = attr.py_type
            (target_pk,) = target._pk_attrs_
            self.associations[attr.name] = Association(
                attr.name, target._trisails_identity_, attr.is_collection, attr.reverse.name, attr.reverse.is_collection,
                one_way=attr.reverse.name.startswith(HIDDEN_REVERSE),
            )
            kind: Literal["to_one", "to_many"] = "to_many" if attr.is_collection else "to_one"
            self.fields[attr.name] = Field(attr.name, attr.name, kind, target_pk.py_type, target_pk.name)
            if attr.is_collection:
                collections.append(attr.name)
            else:
                scalars.append((attr.name, attr.name))
        for wire, column in scalars:
            if wire not in self.associations:
                self.fields[wire] = Field(wire, column, "scalar", getattr(entity, column).py_type)
        self._collections = collections
        self._scalars = scalars

    def _is_default(self, name: str) -> bool:
        return self.declaration.timestamps and name in TIMESTAMPS.values()

    def __repr__(self) -> str:
        return f"<ModelBinding {self.identity}>"

    # ---------------------------------------------------------------------------------- ids and records
    def parse_id(self, raw: Any, parameter: str = "id") -> Any:
        """A primary key from a route parameter or JSON; :class:`UsageError` if it cannot be one."""
        converter = _CONVERTERS.get(_value_type(self.pk_type) or object)
        try:
            if raw is None or converter is None:
                raise ValueError
            return converter(raw)
        except ValueError:
            raise UsageError(
                parameter, f"{raw!r} is not a valid primary key for {self.identity}: expected {self.pk_type.__name__}."
            ) from None

    def record(
        self,
        obj: Any,
        *,
        populate: tuple[str, ...] | None = None,
        select: tuple[str, ...] | None = None,
        omit: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """``obj`` (inside its session) as the dict Sails would send.

        ``populate``: the associations to populate (``None``: all of them; ``()``: none, and then
        collections are left out and to-one associations are primary keys).
        """

        def wanted(name: str) -> bool:
            if name == self.pk:
                return True
            if select is not None:
                return name in select
            return omit is None or name not in omit

        out: dict[str, Any] = {}
        for alias in self._collections:
            if wanted(alias) and (populate is None or alias in populate):
                child = self.models[self.associations[alias].target]
                out[alias] = [child.record(c, populate=()) for c in child.page(getattr(obj, alias).select())]
        for wire, column in self._scalars:
            if not wanted(wire):
                continue
            value = getattr(obj, column)
            association = self.associations.get(wire)
            if association is None:
                out[wire] = to_json(value)
            elif value is None:
                out[wire] = None
            elif populate is None or wire in populate:
                out[wire] = self.models[association.target].record(value, populate=())
            else:
                out[wire] = to_json(value.get_pk())
        return out

    def page(self, query: Any, criteria: Criteria | None = None) -> list[Any]:
        """A query's records by primary key, at most :data:`POPULATE_LIMIT` unless ``criteria`` says."""
        if criteria is None:
            criteria = Criteria(where={}, limit=POPULATE_LIMIT, skip=0, sort=(), select=None, omit=None, populate=())
        return list(apply(query, criteria, self.fields))

    def related_ids(self, obj: Any, alias: str) -> list[Any]:
        """The primary keys ``obj``'s association holds now (one or none for a to-one)."""
        value = getattr(obj, alias)
        if self.associations[alias].many:
            return sorted(child.get_pk() for child in value)
        return [] if value is None else [value.get_pk()]

    # ---------------------------------------------------------------------------------- queries
    def criteria(
        self, where: Any, *, sort: Any = None, limit: int | None = None, skip: int = 0, populate: Any = False
    ) -> Criteria:
        params: dict[str, Any] = {"where": where if where is not None else {}, "sort": sort, "skip": skip}
        if limit is not None:
            params["limit"] = limit
        params["populate"] = populate if isinstance(populate, bool) else list(populate)
        return parse_find(params, self.fields, default_limit=None)

    async def find(self, where: Any, *, sort: Any, limit: int | None, skip: int, populate: Any) -> list[dict[str, Any]]:
        criteria = self.criteria(where, sort=sort, limit=limit, skip=skip, populate=populate)
        return await self.datastore.run(self.find_records, criteria)

    def find_records(self, criteria: Criteria) -> list[dict[str, Any]]:
        """(In a worker thread.) The records ``criteria`` selects, shaped as it says."""
        rows = apply(self.entity.select(), criteria, self.fields)
        return [self.record(r, populate=criteria.populate, select=criteria.select, omit=criteria.omit) for r in rows]

    async def find_one(self, id_or_where: Any, *, populate: Any = False) -> dict[str, Any] | None:
        if isinstance(id_or_where, Mapping):
            found = await self.find(id_or_where, sort=None, limit=2, skip=0, populate=populate)
            if len(found) > 1:
                raise UsageError("where", f"More than one {self.identity} matches {dict(id_or_where)!r}.")
            return found[0] if found else None
        pk = self.parse_id(id_or_where)
        shape = self.criteria({}, populate=populate).populate
        return await self.datastore.run(self.one_record, pk, shape, None, None)

    def one_record(
        self, pk: Any, populate: tuple[str, ...] | None, select: tuple[str, ...] | None, omit: tuple[str, ...] | None
    ) -> dict[str, Any] | None:
        """(In a worker thread.) One record by primary key, or ``None``."""
        obj = self.entity.get(**{self.pk: pk})
        return None if obj is None else self.record(obj, populate=populate, select=select, omit=omit)

    async def count(self, where: Any) -> int:
        criteria = self.criteria(where)

        def count() -> int:
            return apply(self.entity.select(), criteria, self.fields).count()

        return await self.datastore.run(count)

    # ---------------------------------------------------------------------------------- writes
    async def create(self, values: Mapping[str, Any]) -> Change:
        values = dict(values) if isinstance(values, Mapping) else values
        if isinstance(values, dict):
            await self._lifecycle("before_create", values)
        change = await self.datastore.run(self.create_record, values)
        await self._lifecycle("after_create", change.after)
        return change

    async def update(self, id: Any, values: Mapping[str, Any]) -> Change | None:
        pk = self.parse_id(id)
        values = dict(values) if isinstance(values, Mapping) else values
        if isinstance(values, dict):
            await self._lifecycle("before_update", values)
        change = await self.datastore.run(self.update_record, pk, values)
        if change is not None:
            await self._lifecycle("after_update", change.after)
        return change

    async def destroy(self, id: Any) -> Change | None:
        pk = self.parse_id(id)
        await self._lifecycle("before_destroy", to_json(pk))
        change = await self.datastore.run(self.destroy_record, pk)
        if change is not None:
            await self._lifecycle("after_destroy", change.before)
        return change

    async def _lifecycle(self, name: str, argument: Any) -> None:
        """Run the model's lifecycle callback ``name`` (sync or async) if it defines one, on the loop.
        A ``before_*`` callback may change the values it is given, or raise to refuse the write (a
        UsageError answers 400); an ``after_*`` one runs after the commit, before anything is published."""
        callback = getattr(self.declaration, name, None)
        if callback is None:
            return
        result = callback(argument)
        if inspect.isawaitable(result):
            await result

    async def set_members(
        self, id: Any, alias: str, *, add: list[Any] = (), remove: list[Any] = (), replace: list[Any] | None = None  # type: ignore[assignment]
    ) -> Change | None:
        association = self.associations.get(alias)
        if association is None or not association.many:
            raise UsageError(alias, f"`{alias}` is not a collection of {self.identity}.", code=VALUES_TO_SET)
        return await self.datastore.run(self.change_collection, self.parse_id(id), alias, list(add), list(remove), replace)

    def create_record(self, values: dict[str, Any]) -> Change:
        """(In a worker thread.) Insert a record; :class:`UsageError` for values the model refuses."""
        if not isinstance(values, dict):
            raise UsageError("values", f"A new {self.identity} is an object of attribute values.", code=NEW_RECORD)
        if self.pk in values and self.pk_auto:
            raise UsageError(self.pk, f"`{self.pk}` is assigned by the database; leave it out.", code=NEW_RECORD)
        kwargs, related = self.convert(values, code=NEW_RECORD, creating=True)
        for attr in self.entity._attrs_:
            missing = attr.name not in kwargs and attr.name not in related
            if missing and attr.is_required and not attr.auto and attr.default is None and not self._is_default(attr.name):
                raise UsageError(
                    attr.name, f"Missing value for required attribute `{attr.name}`.", code=NEW_RECORD
                )
        self._check_unique(kwargs, None, NEW_RECORD)
        snapshots = self._snapshot_targets(related)
        with _refusals(NEW_RECORD):
            obj = self.entity(**kwargs)
            for alias, targets in related.items():
                getattr(obj, alias).add(targets)
            orm.flush()
        pk = obj.get_pk()
        links = self._links(obj, {alias: [] for alias in self.associations}, snapshots)
        after = self.record(obj)
        return Change(id=pk, before=None, after=after, values=after, links=links)

    def update_record(self, pk: Any, values: dict[str, Any]) -> Change | None:
        """(In a worker thread.) Change a record; ``None`` if it does not exist."""
        if not isinstance(values, dict):
            raise UsageError("values", f"The values to set on a {self.identity} are an object.", code=VALUES_TO_SET)
        obj = self.entity.get(**{self.pk: pk})
        if obj is None:
            return None
        values = {k: v for k, v in values.items() if k != self.pk}  # the primary key never changes
        kwargs, related = self.convert(values, code=VALUES_TO_SET, creating=False)
        before = self.record(obj)
        held = {alias: self.related_ids(obj, alias) for alias in self.associations}
        self._check_unique(kwargs, obj, VALUES_TO_SET)
        snapshots = self._snapshot_targets(related)
        with _refusals(VALUES_TO_SET):
            obj.set(**kwargs)
            for alias, targets in related.items():
                collection = getattr(obj, alias)
                collection.clear()
                collection.add(targets)
            if self.declaration.timestamps and (kwargs or related):
                obj.updated_at = max(now_ms(), obj.updated_at)  # a changed collection alone counts too
            orm.flush()
        changed: dict[str, Any] = {}
        for wire in values:
            if wire in self.fields and wire not in TIMESTAMPS:
                field_ = self.fields[wire]
                changed[wire] = (
                    self.related_ids(obj, wire) if field_.kind == "to_many" else self.record(obj, populate=())[wire]
                )
        changed[self.pk] = to_json(pk)
        if self.declaration.timestamps:
            changed["updatedAt"] = obj.updated_at
        links = self._links(obj, held, snapshots, only=set(kwargs) | set(related))
        return Change(id=pk, before=before, after=self.record(obj), values=changed, links=links)

    def destroy_record(self, pk: Any) -> Change | None:
        """(In a worker thread.) Delete a record; ``None`` if it does not exist."""
        obj = self.entity.get(**{self.pk: pk})
        if obj is None:
            return None
        before = self.record(obj)
        links = [
            Link(alias, removed=ids) for alias in self.associations if (ids := self.related_ids(obj, alias))
        ]
        with _refusals(VALUES_TO_SET):
            obj.delete()
            orm.flush()
        return Change(id=pk, before=before, after=None, links=links)

    def change_collection(
        self, pk: Any, alias: str, add: list[Any], remove: list[Any], replace: list[Any] | None
    ) -> Change | None:
        """(In a worker thread.) Add to, remove from or replace a collection; ``None`` if no parent."""
        obj = self.entity.get(**{self.pk: pk})
        if obj is None:
            return None
        child = self.models[self.associations[alias].target]
        held = {alias: self.related_ids(obj, alias)}
        before = self.record(obj)
        collection = getattr(obj, alias)
        if replace is not None:
            targets = child.fetch(replace, alias, VALUES_TO_SET)
            snapshots = self._snapshot_targets({alias: targets})
            with _refusals(VALUES_TO_SET):
                collection.clear()
                collection.add(targets)
                orm.flush()
        else:
            adding = child.fetch(add, alias, VALUES_TO_SET)
            removing = child.fetch(remove, alias, VALUES_TO_SET)  # removing a record that does not exist is a 404
            snapshots = self._snapshot_targets({alias: adding})
            with _refusals(VALUES_TO_SET):
                collection.add(adding)
                collection.remove([c for c in removing if c in collection])
                orm.flush()
        links = self._links(obj, held, snapshots, only={alias})
        return Change(id=pk, before=before, after=self.record(obj), links=links)

    # ---------------------------------------------------------------------------------- write helpers
    def convert(
        self, values: Mapping[str, Any], *, code: str, creating: bool
    ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        """Wire values → (Pony keyword arguments, collections to fill), converted and checked."""
        kwargs: dict[str, Any] = {}
        related: dict[str, list[Any]] = {}
        for name, value in values.items():
            if name in TIMESTAMPS and self.declaration.timestamps:
                continue  # the server keeps time; a record sent back as it was received still works
            field_ = self.fields.get(name)
            if field_ is None:
                known = ", ".join(n for n in self.fields if n not in TIMESTAMPS)
                raise UsageError(
                    name, f"`{name}` is not an attribute of {self.identity} (attributes: {known}).", code=code
                )
            attr = getattr(self.entity, field_.column)
            if field_.kind == "to_many":
                if isinstance(value, str):
                    value = _parsed(value, name, code)
                if value is None:
                    value = []
                if not isinstance(value, list):
                    raise UsageError(name, f"`{name}` takes a list of {self.associations[name].target} ids.", code=code)
                related[name] = self.models[self.associations[name].target].fetch(value, name, code)
            elif field_.kind == "to_one":
                if value is None:
                    kwargs[field_.column] = None
                else:
                    kwargs[field_.column] = self.models[self.associations[name].target].fetch([value], name, code)[0]
            else:
                kwargs[field_.column] = self._scalar(attr, name, value, code)
                attribute = self.declaration.attributes.get(name)
                if attribute is not None and attribute.rules and kwargs[field_.column] is not None:
                    _check_rules(name, kwargs[field_.column], attribute.rules, code)
        for column, value in kwargs.items():
            attr = getattr(self.entity, column)
            if value is None and attr.is_required:
                raise UsageError(column, f"`{column}` is required: it cannot be null.", code=code)
        return kwargs, related

    def _scalar(self, attr: Any, name: str, value: Any, code: str) -> Any:
        if value is None:
            return None
        if attr.py_type is orm.Json:
            return value
        target = _value_type(attr.py_type)
        if target is None:
            return value  # a type trisails does not convert: Pony checks it
        try:
            converted = _CONVERTERS[target](value)
        except ValueError as error:
            raise UsageError(name, f"{_show(value)} is not a valid value for `{name}`: expected {error}.", code=code) from None
        if target is not attr.py_type and isinstance(attr.py_type, type):
            converted = attr.py_type(converted)  # LongStr and friends
        return converted

    def fetch(self, ids: list[Any], parameter: str, code: str, *, missing_ok: bool = False) -> list[Any]:
        """(In a worker thread.) These records, by primary key; :class:`UsageError` for one that is missing."""
        records = []
        for raw in ids:
            raw = raw.get(self.pk) if isinstance(raw, dict) else raw
            try:
                pk = self.parse_id(raw, parameter)
            except UsageError as error:
                raise UsageError(parameter, error.details, code=code) from None
            obj = self.entity.get(**{self.pk: pk})
            if obj is None:
                if missing_ok:
                    continue
                raise MissingRecord(
                    parameter, f"`{parameter}`: there is no {self.identity} with the id {_show(raw)}.", code=code
                )
            records.append(obj)
        return records

    def _check_unique(self, kwargs: Mapping[str, Any], obj: Any, code: str) -> None:
        """A clear 400 ``E_UNIQUE`` for a unique value another record holds (the database still has
        the last word, for two writers racing)."""
        for column, value in kwargs.items():
            attr = getattr(self.entity, column)
            if attr.is_unique and value is not None and not attr.is_pk:
                holder = self.entity.get(**{column: value})
                if holder is not None and holder is not obj:
                    raise UsageError(
                        column, f"Would violate uniqueness constraint: another {self.identity} has this `{column}`.", code="E_UNIQUE"
                    )

    def _snapshot_targets(self, related: Mapping[str, list[Any]]) -> dict[tuple[str, Any], Any]:
        """Before records are given a new parent: the parent each had (so it can be told it lost them)."""
        former: dict[tuple[str, Any], Any] = {}
        for alias, targets in related.items():
            association = self.associations[alias]
            if association.via_many:
                continue
            for target in targets:
                parent = getattr(target, association.via)
                if parent is not None:
                    former[(alias, target.get_pk())] = parent.get_pk()
        return former

    def _links(
        self,
        obj: Any,
        held: Mapping[str, list[Any]],
        former_parents: Mapping[tuple[str, Any], Any],
        only: set[str] | None = None,
    ) -> list[Link]:
        links = []
        pk = obj.get_pk()
        for alias in self.associations:
            if only is not None and alias not in only:
                continue
            now = self.related_ids(obj, alias)
            before = held.get(alias, [])
            added = [i for i in now if i not in before]
            removed = [i for i in before if i not in now]
            if not added and not removed:
                continue
            stolen = {
                i: former_parents[(alias, i)]
                for i in added
                if (alias, i) in former_parents and former_parents[(alias, i)] != pk
            }
            links.append(Link(alias, added=added, removed=removed, stolen_from=stolen))
        return links



class ValidationError(UsageError):
    """A value breaks one of its attribute's validation rules (``is_email``, ``min``, ``is_in``, ...):
    a 400 whose ``details`` name the attribute and the rule; :attr:`rule` holds the rule's name and
    :attr:`parameter` the attribute's. Nothing was written, and nothing is published."""

    def __init__(self, attribute: str, rule: str, details: str, *, code: str) -> None:
        super().__init__(attribute, details, code=code)
        self.rule = rule


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_URL = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)


def _check_rules(name: str, value: Any, rules: Mapping[str, Any], code: str) -> None:
    """Refuse ``value`` for the attribute ``name`` if it breaks one of ``rules``, naming the first it breaks."""
    for rule, argument in rules.items():
        broken = None
        if rule in ("is_email", "is_url") and argument:
            pattern, what = (_EMAIL, "an email address") if rule == "is_email" else (_URL, "an http(s) URL")
            if not (isinstance(value, str) and pattern.fullmatch(value)):
                broken = f"it must be {what}"
        elif rule == "min" and isinstance(value, (int, float, Decimal)) and value < argument:
            broken = f"it must be at least {argument}"
        elif rule == "max" and isinstance(value, (int, float, Decimal)) and value > argument:
            broken = f"it must be at most {argument}"
        elif rule == "min_length" and isinstance(value, str) and len(value) < argument:
            broken = f"it must be at least {argument} characters long"
        elif rule == "max_length" and isinstance(value, str) and len(value) > argument:
            broken = f"it must be at most {argument} characters long"
        elif rule == "is_in" and value not in argument:
            broken = f"it must be one of {', '.join(repr(v) for v in argument)}"
        elif rule == "regex" and not (isinstance(value, str) and argument.search(value)):
            broken = f"it must match {argument.pattern!r}"
        elif rule == "custom":
            try:
                passed = argument(value)
            except Exception as error:  # a check that raises refuses the value, saying why
                passed, broken = False, f"the custom check raised {type(error).__name__}: {error}"
            if not passed and broken is None:
                broken = f"the custom check {getattr(argument, '__name__', 'custom')} refused it"
        if broken is not None:
            raise ValidationError(
                name, rule, f"{_show(value)} is not a valid value for `{name}`: {broken} (rule `{rule}`).", code=code
            )


@contextmanager
def _refusals(code: str) -> Iterator[None]:
    """Turn what Pony and the database refuse during a write into a 400 :class:`UsageError` of ``code``
    (``E_UNIQUE`` for a taken unique value)."""
    try:
        yield
    except UsageError:
        raise
    except (orm.CacheIndexError, orm.TransactionIntegrityError, orm.IntegrityError) as error:
        text = str(error)
        if isinstance(error, orm.CacheIndexError) or "unique" in text.lower():
            raise UsageError("values", f"A record with that value already exists: {_unique_detail(text)}", code="E_UNIQUE") from None
        raise UsageError("values", f"The database refused the values: {text}", code=code) from None
    except (ValueError, TypeError, orm.ConstraintError) as error:
        raise UsageError("values", str(error), code=code) from None


def _parsed(text: str, parameter: str, code: str) -> Any:
    """A collection sent as JSON text (``pets=[1,2]`` in a query string), parsed; malformed text is a
    :class:`UsageError` of ``code``, the code of the write it was sent for."""
    try:
        return _json(text, parameter)
    except UsageError as error:
        raise UsageError(parameter, error.details, code=code) from None


def _unique_detail(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "unique constraint"
    return first[:300]


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a value nested deeper than the interpreter recurses (only code can build one)
        text = "<a value nested too deeply to show>"
    return text if len(text) <= 60 else text[:57] + "..."


def to_json(value: Any) -> Any:
    """A stored value as JSON can carry it: dates as ISO 8601, decimals as numbers, UUIDs as text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date, clock_time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value
