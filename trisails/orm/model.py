"""Declaring models: ``class User(Model)`` with Pony-style attributes, built afresh for each app.

A model is declared once, in ``api/models/user.py`` or in code::

    from trisails import Model, Optional, Required, Set

    class User(Model):
        name = Required(str, unique=True)
        age = Optional(int)
        pets = Set("Pet")

The attributes take exactly the arguments of Pony's ``Required``, ``Optional``, ``Set`` and
``PrimaryKey``; a relation names the other model by its class or its class name. Why not Pony's own
classes: a Pony attribute belongs to one database for good (its options are consumed when the entity
is built), while a model declaration is shared by every app that uses it, in tests two at a time. So
the declaration only records its attributes, and each app builds its own Pony entities from it when
it lifts (:mod:`trisails.orm.binding`).

Unless a model says otherwise it gets what Sails gives every model: an auto-incremented integer ``id``
(when it declares no ``PrimaryKey``), and ``created_at``/``updated_at`` in epoch milliseconds, sent as
``createdAt``/``updatedAt`` (``class Reading(Model, timestamps=False)`` opts out).

The class is also the model's handle in actions: ``await User.find(where={"age": {">": 30}})``,
``User.publish([7], {...})``. It acts on the app running the current task, so one declaration serves
any number of apps without global state.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .._current import current_app
from .._errors import ConfigError, TrisailsError

if TYPE_CHECKING:
    from ..web.request import Request
    from .binding import ModelBinding

__all__ = ["Model", "ModelError", "Optional", "PrimaryKey", "Required", "Set"]

T = TypeVar("T")

#: The lifecycle callbacks a model may define, as classmethods (sync or async), as Sails' beforeCreate...
LIFECYCLE = ("before_create", "after_create", "before_update", "after_update", "before_destroy", "after_destroy")

#: Names a model's attributes may not take: they are the model's own methods, or Pony's.
RESERVED = frozenset(
    {
        "identity",
        "find",
        "find_one",
        "count",
        "create",
        "update",
        "destroy",
        "add_to",
        "remove_from",
        "replace_collection",
        "run",
        "entity",
        "subscribe",
        "unsubscribe",
        "publish",
        "get_room_name",
        "binding",
        "createdAt",
        "updatedAt",
        "table",
        "timestamps",
        "attributes",
        *LIFECYCLE,
    }
)


class ModelError(TrisailsError):
    """A model cannot be declared or used as written: the message says which model and what to change."""


class Attribute:
    """One declared attribute: the Pony attribute kind and the arguments to build it with."""

    kind: ClassVar[str]

    def __init__(self, py_type: Any, *args: Any, **kwargs: Any) -> None:
        for sails_name, name in SAILS_RULE_NAMES.items():
            if sails_name in kwargs:
                raise ModelError(f"Sails' validation {sails_name}= is written {name}= in trisails")
        self.rules: dict[str, Any] = {name: _check_rule(name, kwargs.pop(name)) for name in RULES if name in kwargs}
        """The validation rules checked on every create and update (``is_email``, ``min``, ...)."""
        self.py_type = py_type
        self.args = args
        self.kwargs = kwargs
        caller = sys._getframe(1)
        self.declared_at: tuple[str, int] = (caller.f_code.co_filename, caller.f_lineno)
        """Where the attribute is declared (file, line), so a mistake found later can point there."""

    @property
    def type_name(self) -> Any:
        """The type as Pony takes it: a related model by its class name, anything else as given."""
        if isinstance(self.py_type, type) and issubclass(self.py_type, Model):
            return self.py_type.__name__
        return self.py_type

    def build(self, **extra: Any) -> Any:
        """A fresh Pony attribute for one app's database (``extra``: options trisails adds, such as the
        ``reverse`` of a one-way association)."""
        import pony.orm

        return getattr(pony.orm, self.kind)(self.type_name, *self.args, **{**self.kwargs, **extra})

    def __repr__(self) -> str:
        extra = "".join(f", {a!r}" for a in self.args) + "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.kind}({self.type_name!r}{extra})"


#: Sails' attribute validations, in Python's spelling: checked by trisails on create and update, before
#: anything is written, so a refused value is a 400 naming the attribute and the rule.
RULES = ("is_email", "is_url", "min", "max", "min_length", "max_length", "is_in", "regex", "custom")
SAILS_RULE_NAMES = {
    "isEmail": "is_email",
    "isURL": "is_url",
    "minLength": "min_length",
    "maxLength": "max_length",
    "isIn": "is_in",
}


def _check_rule(name: str, value: Any) -> Any:
    """A rule's argument, checked when the model is declared (a compiled pattern for ``regex``)."""
    import re

    if name in ("is_email", "is_url"):
        if not isinstance(value, bool):
            raise ModelError(f"the rule {name} takes True or False, got {value!r}")
    elif name in ("min", "max"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelError(f"the rule {name} takes a number, got {value!r}")
    elif name in ("min_length", "max_length"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelError(f"the rule {name} takes a whole number of characters, got {value!r}")
    elif name == "is_in":
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or not list(value):
            raise ModelError(f"the rule is_in takes a list of the allowed values, got {value!r}")
        return tuple(value)
    elif name == "regex":
        try:
            return re.compile(value) if isinstance(value, str) else re.compile(value.pattern, value.flags)
        except (re.error, AttributeError) as error:
            raise ModelError(f"the rule regex takes a regular expression, got {value!r} ({error})") from None
    elif name == "custom" and not callable(value):
        raise ModelError(f"the rule custom takes a function value -> bool, got {value!r}")
    return value


class Required(Attribute):
    """A value every record must have (Pony's ``Required``): a missing one is a 400 on create."""

    kind = "Required"


class Optional(Attribute):
    """A value a record may leave out, stored as ``null`` (Pony's ``Optional``)."""

    kind = "Optional"


class Set(Attribute):
    """The records on the many side of an association (Pony's ``Set``), a collection in Sails' terms."""

    kind = "Set"


class PrimaryKey(Attribute):
    """The model's own primary key, instead of the default auto-incremented ``id``."""

    kind = "PrimaryKey"


class Model:
    """The base of every model: subclass it and declare attributes.

    Class keywords: ``identity`` (default: the class name in lower case; it names the blueprint routes,
    the rooms and the event, as in Sails), ``timestamps`` (default ``True``), ``table`` (the table name;
    Pony's default otherwise).
    """

    identity: ClassVar[str]
    timestamps: ClassVar[bool]
    table: ClassVar[str | None]
    attributes: ClassVar[dict[str, Attribute]]
    """The declared attributes by name, in declaration order."""

    def __init_subclass__(
        cls, *, identity: str | None = None, timestamps: bool = True, table: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.identity = identity or cls.__name__.lower()
        if not cls.identity.isidentifier():
            raise ModelError(f"model {cls.__name__}: identity {cls.identity!r} must be a Python identifier")
        cls.timestamps = timestamps
        cls.table = table
        for name in LIFECYCLE:
            sails_name = "".join(part.capitalize() if i else part for i, part in enumerate(name.split("_")))
            if sails_name in vars(cls):
                raise ModelError(f"model {cls.__name__}: Sails' {sails_name} is written {name} in trisails")
            if name in vars(cls) and not callable(getattr(cls, name)):
                raise ModelError(f"model {cls.__name__}: {name} must be a function (a classmethod, plain or async)")
        declared = {name: value for name, value in vars(cls).items() if isinstance(value, Attribute)}
        for name in declared:
            if name in RESERVED or name.startswith("_"):
                raise ModelError(
                    f"model {cls.__name__}: an attribute cannot be named {name!r} "
                    f"(reserved: {', '.join(sorted(RESERVED))}, and names starting with '_')"
                )
            delattr(cls, name)  # User.find stays the method; the attributes live in User.attributes
        primary = [name for name, a in declared.items() if isinstance(a, PrimaryKey)]
        if len(primary) > 1:
            raise ModelError(f"model {cls.__name__}: declare one PrimaryKey at most (blueprints address records by one id)")
        if timestamps and {"created_at", "updated_at"} & declared.keys():
            raise ModelError(
                f"model {cls.__name__}: created_at and updated_at are added for you; "
                "declare the model with timestamps=False to define them yourself"
            )
        inherited: dict[str, Attribute] = {}
        for base in reversed(cls.__mro__[1:]):
            inherited.update(getattr(base, "attributes", {}))
        cls.attributes = {**inherited, **declared}

    # Lifecycle callbacks (Sails' beforeCreate ... afterDestroy): define any of them as classmethods,
    # plain or async. They run for the blueprints and the Model API alike, never for run().
    #   before_create(values)   values about to be created: change them in place, or raise to refuse
    #   after_create(record)    the record created, after the commit
    #   before_update(values)   the values about to be set (change or refuse, as above)
    #   after_update(record)    the record as it now is
    #   before_destroy(id)      the id about to be destroyed (raise to refuse)
    #   after_destroy(record)   the record as it was

    def __init__(self) -> None:
        raise ModelError(
            f"{type(self).__name__} is a model declaration, not a record: "
            f"use await {type(self).__name__}.create({{...}}) to make a record"
        )

    # --------------------------------------------------------------------------------------- the binding
    @classmethod
    def binding(cls) -> ModelBinding:
        """This model in the running app: its Pony entity, fields, rooms (see :class:`ModelBinding`)."""
        try:
            app = current_app.get()
        except LookupError:
            raise ModelError(
                f"{cls.__name__} is used outside a lifted app: models act on the app running the current task"
            ) from None
        binding = app.models.get(cls.identity)
        if binding is None:
            raise ModelError(
                f"{cls.__name__} is not a model of the running app: register it with app.model({cls.__name__}) "
                "or declare it in the app's api/models/"
            )
        return binding

    @classmethod
    def entity(cls) -> Any:
        """The running app's Pony entity class for this model, for queries inside :meth:`run`."""
        return cls.binding().entity

    # --------------------------------------------------------------------------------------- queries
    @classmethod
    async def find(
        cls,
        where: Mapping[str, Any] | str | None = None,
        *,
        sort: Any = None,
        limit: int | None = None,
        skip: int = 0,
        populate: bool | Iterable[str] = False,
    ) -> list[dict[str, Any]]:
        """Records matching ``where`` (the blueprint ``where`` language), as dicts with wire names.

        Raises :class:`~trisails.UsageError` for a clause, sort or name the model does not have.
        """
        return await cls.binding().find(where, sort=sort, limit=limit, skip=skip, populate=populate)

    @classmethod
    async def find_one(cls, id_or_where: Any, *, populate: bool | Iterable[str] = False) -> dict[str, Any] | None:
        """The record with this primary key (or the one record matching a ``where`` dict), or ``None``."""
        return await cls.binding().find_one(id_or_where, populate=populate)

    @classmethod
    async def count(cls, where: Mapping[str, Any] | str | None = None) -> int:
        """How many records match ``where``."""
        return await cls.binding().count(where)

    # --------------------------------------------------------------------------------------- changes
    @classmethod
    async def create(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a record and return it. Like Sails' ``Model.create``, it publishes nothing: call
        :meth:`publish` (or use the blueprints) for that. Raises :class:`~trisails.UsageError` with
        code ``E_INVALID_NEW_RECORD`` or ``E_UNIQUE`` for values the model refuses."""
        record = (await cls.binding().create(values)).after
        assert record is not None
        return record

    @classmethod
    async def update(cls, id: Any, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Change a record and return it as it now is, or ``None`` if there is no such record."""
        change = await cls.binding().update(id, values)
        return change.after if change is not None else None

    @classmethod
    async def destroy(cls, id: Any) -> dict[str, Any] | None:
        """Delete a record and return it as it was, or ``None`` if there was no such record."""
        change = await cls.binding().destroy(id)
        return change.before if change is not None else None

    @classmethod
    async def add_to(cls, id: Any, alias: str, child_ids: Iterable[Any]) -> dict[str, Any] | None:
        """Add records to a collection (``await User.add_to(1, "pets", [7])``); returns the parent."""
        change = await cls.binding().set_members(id, alias, add=list(child_ids))
        return change.after if change is not None else None

    @classmethod
    async def remove_from(cls, id: Any, alias: str, child_ids: Iterable[Any]) -> dict[str, Any] | None:
        """Remove records from a collection; returns the parent, or ``None`` if it does not exist."""
        change = await cls.binding().set_members(id, alias, remove=list(child_ids))
        return change.after if change is not None else None

    @classmethod
    async def replace_collection(cls, id: Any, alias: str, child_ids: Iterable[Any]) -> dict[str, Any] | None:
        """Make a collection hold exactly these records; returns the parent."""
        change = await cls.binding().set_members(id, alias, replace=list(child_ids))
        return change.after if change is not None else None

    @classmethod
    async def run(cls, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a database worker thread inside its own ``db_session``, and return its
        result, which must be plain data (dicts, lists, numbers): Pony entities cannot leave the session.

        For the queries the ``where`` language cannot say:
        ``await User.run(lambda: [u.to_dict() for u in User.entity().select(lambda u: u.age > 30)])``.
        """
        return await cls.binding().datastore.run(fn, *args)

    # --------------------------------------------------------------------------------------- pub-sub
    @classmethod
    def get_room_name(cls, id: Any) -> str:
        """The room of one record: ``sails_model_user_7:user``."""
        return cls.binding().pubsub.room(id)

    @classmethod
    def subscribe(cls, req: Request, ids: Any) -> None:
        """Subscribe the socket of ``req`` to these records' messages (nothing for an HTTP request)."""
        cls.binding().pubsub.subscribe(req, ids)

    @classmethod
    def unsubscribe(cls, req: Request, ids: Any) -> None:
        """Stop the socket of ``req`` hearing about these records."""
        cls.binding().pubsub.unsubscribe(req, ids)

    @classmethod
    def publish(cls, ids: Any, data: Any, req: Request | None = None) -> int:
        """Send ``data`` as the model's event to every socket subscribed to any of ``ids``, once each,
        leaving out ``req``'s socket; returns how many sockets it was queued to."""
        return cls.binding().pubsub.publish(ids, data, req)


class DeclarationError(ConfigError):
    """A model declaration the app cannot use: an attribute of a type no column holds, a relation to
    a model the app does not have or without its other side, an option Pony does not know. Carries
    where the attribute is declared and what to do, for the one-line startup message."""

    def __init__(self, message: str, *, at: tuple[str, int] | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.at = at
        """(file, line) of the attribute's declaration, when the mistake is one attribute's."""
        self.hint = hint
        """What to change, in a sentence."""


#: The options Pony's attributes take, for the hint that follows a misspelled one.
KNOWN_OPTIONS = (
    "default", "unique", "index", "nullable", "column", "sql_type", "sql_default", "size", "max_len",
    "min", "max", "precision", "scale", "autostrip", "reverse", "cascade_delete", "lazy", "volatile",
    "py_check", "auto", "table", "optimistic", "fk_name",
)


def _column_types() -> tuple[type, ...]:
    """The Python types a Pony column can hold (the SQLite and PostgreSQL providers agree on these)."""
    from datetime import date, datetime, time, timedelta
    from decimal import Decimal
    from uuid import UUID

    from pony.orm.ormtypes import Array, Json

    return (str, int, float, bool, Decimal, datetime, date, time, timedelta, UUID, bytes, Json, Array)


def check_relations(models: Iterable[type[Model]]) -> None:
    """Check the app's model declarations before any database is opened, so a mistake is one clear
    :class:`DeclarationError` naming the attribute and its line, not Pony's traceback at lift.

    First the mistakes trisails can name precisely (types, relations), then a dry run of Pony's own
    mapping on a private in-memory SQLite database for everything else (a misspelled option, say)."""
    models = list(models)
    by_name = {m.__name__: m for m in models}
    column_types = _column_types()
    for model in models:
        for name, attribute in model.attributes.items():
            where = f"model {model.__name__}.{name}"
            target = attribute.type_name
            if isinstance(attribute, Set) and not isinstance(target, str):
                raise DeclarationError(
                    f"{where}: a Set holds records of another model, not {_type_name(target)}",
                    at=attribute.declared_at,
                    hint='Name the other model (Set("Pet")), or use Optional(Json) for a list of values (from pony.orm import Json).',
                )
            if isinstance(target, str):
                if target not in by_name:
                    known = ", ".join(sorted(by_name)) or "none"
                    raise DeclarationError(
                        f"{where} refers to {target!r}, which is not a model of this app (models: {known})",
                        at=attribute.declared_at,
                        hint="Correct the model's name, or declare that model in api/models/ (or app.model() it).",
                    )
                _check_other_side(model, name, attribute, by_name[target])
            elif not (isinstance(target, type) and issubclass(target, column_types)):
                raise DeclarationError(
                    f"{where}: {attribute.kind}({_type_name(target)}) is not a type a column can hold",
                    at=attribute.declared_at,
                    hint=(
                        "Use str, int, float, bool, Decimal, datetime, date, time, timedelta, UUID or bytes; "
                        "for lists and dicts use Json (from pony.orm import Json), for records of another "
                        'model Set("Other") or Optional("Other").'
                    ),
                )
    _dry_run(models)


def _type_name(value: Any) -> str:
    return value.__name__ if isinstance(value, type) else repr(value)


def _check_other_side(model: type[Model], name: str, attribute: Attribute, other: type[Model]) -> None:
    """A relation with ``reverse=`` must name an attribute of the other model that points back; one
    without it and with nothing pointing back is one-way (:func:`one_way_relations`), which is fine."""
    reverse = attribute.kwargs.get("reverse")
    if reverse is None:
        return
    back = other.attributes.get(reverse)
    if back is None or back.type_name != model.__name__:
        raise DeclarationError(
            f"model {model.__name__}.{name} has reverse={reverse!r}, but {other.__name__} has no attribute "
            f"{reverse!r} pointing back to {model.__name__}",
            at=attribute.declared_at,
            hint=f"Name the attribute of {other.__name__} that points back, or leave reverse= out for a one-way association.",
        )


#: The prefix of the attributes trisails adds to the other side of a one-way association; the API and
#: the blueprints never show them (declared attributes cannot start with ``_``).
HIDDEN_REVERSE = "_reverse_of_"


def one_way_relations(models: Iterable[type[Model]]) -> dict[tuple[str, str], tuple[str, str]]:
    """The relations declared on one side only (Sails' ``model: 'member'`` with no ``via``), which
    Pony cannot map as they are: ``(model, attribute)`` → ``(other model, hidden attribute)``, the
    ``Set`` trisails adds to the other model so Pony has both sides.

    A relation is one-way when it has no ``reverse=`` and the other model has no attribute pointing
    back at its model. Its hidden other side is always a ``Set``: a to-one relation becomes one-to-many
    (many cards may have the same assignee), a ``Set`` many-to-many (as Sails' one-way collections)."""
    models = list(models)
    by_name = {m.__name__: m for m in models}
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for model in models:
        for name, attribute in model.attributes.items():
            target = attribute.type_name
            if not isinstance(target, str) or target not in by_name or "reverse" in attribute.kwargs:
                continue
            other = by_name[target]
            back = [
                n for n, a in other.attributes.items()
                if a.type_name == model.__name__ and not (other is model and n == name)
            ]
            if not back:
                found[(model.__name__, name)] = (target, f"{HIDDEN_REVERSE}{model.__name__}_{name}")
    return found


def _dry_run(models: list[type[Model]]) -> None:
    """Map the models on a throwaway in-memory database; what Pony refuses becomes a DeclarationError
    pointing at the attribute its message names."""
    import re

    from pony import orm

    from .binding import build_entities

    if not models:
        return
    db = orm.Database()
    try:
        build_entities(db, models)
        db.bind(provider="sqlite", filename=":memory:")
        db.generate_mapping(create_tables=False, check_tables=False)
    except Exception as error:
        text = str(error)
        at = None
        by_name = {m.__name__: m for m in models}
        for model_name, attr_name in re.findall(r"\b(\w+)\.(\w+)\b", text):
            attribute = by_name.get(model_name, Model).__dict__.get("attributes", {}).get(attr_name)
            if attribute is not None:
                at = attribute.declared_at
                break
        hint = None
        if "unknown option" in text:
            hint = (
                f"Correct the option's spelling; the options Pony knows: {', '.join(KNOWN_OPTIONS)}; "
                f"and trisails' validation rules: {', '.join(RULES)}."
            )
        raise DeclarationError(f"the models cannot be mapped: {text}", at=at, hint=hint) from error
    finally:
        if db.provider is not None:
            db.disconnect()
