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

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .._current import current_app
from .._errors import ConfigError, TrisailsError

if TYPE_CHECKING:
    from ..web.request import Request
    from .binding import ModelBinding

__all__ = ["Model", "ModelError", "Optional", "PrimaryKey", "Required", "Set"]

T = TypeVar("T")

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
    }
)


class ModelError(TrisailsError):
    """A model cannot be declared or used as written: the message says which model and what to change."""


class Attribute:
    """One declared attribute: the Pony attribute kind and the arguments to build it with."""

    kind: ClassVar[str]

    def __init__(self, py_type: Any, *args: Any, **kwargs: Any) -> None:
        self.py_type = py_type
        self.args = args
        self.kwargs = kwargs

    @property
    def type_name(self) -> Any:
        """The type as Pony takes it: a related model by its class name, anything else as given."""
        if isinstance(self.py_type, type) and issubclass(self.py_type, Model):
            return self.py_type.__name__
        return self.py_type

    def build(self) -> Any:
        """A fresh Pony attribute for one app's database."""
        import pony.orm

        return getattr(pony.orm, self.kind)(self.type_name, *self.args, **self.kwargs)

    def __repr__(self) -> str:
        extra = "".join(f", {a!r}" for a in self.args) + "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.kind}({self.type_name!r}{extra})"


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


def check_relations(models: Iterable[type[Model]]) -> None:
    """Refuse relations to models the app does not have, before Pony gives a less helpful error."""
    by_name = {m.__name__: m for m in models}
    for model in by_name.values():
        for name, attribute in model.attributes.items():
            target = attribute.type_name
            if isinstance(attribute, Set) and not isinstance(target, str):
                raise ConfigError(f"model {model.__name__}.{name}: a Set holds records of another model")
            if isinstance(target, str) and target not in by_name:
                known = ", ".join(sorted(by_name)) or "none"
                raise ConfigError(
                    f"model {model.__name__}.{name} refers to {target!r}, which is not a model of this app (models: {known})"
                )
