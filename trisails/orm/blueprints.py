"""Blueprints: the REST routes, shortcuts and association routes every model gets, and their actions.

For the model ``user`` (base ``/user``, after ``blueprints.prefix`` and ``blueprints.rest_prefix``)::

    GET    /user                          find          subscribes the socket to what it found
    GET    /user/:id                      find_one      subscribes to the record
    POST   /user                          create        publishes created
    PATCH  /user/:id   (and PUT)          update        publishes updated
    DELETE /user/:id                      destroy       publishes destroyed
    PUT    /user/:parentid/pets/:childid  add           publishes addedTo
    DELETE /user/:parentid/pets/:childid  remove        publishes removedFrom
    PUT    /user/:parentid/pets           replace       publishes addedTo/removedFrom
    GET    /user/:parentid/pets           populate

and, when ``blueprints.shortcuts`` is on (in development by default), ``GET /user/find``,
``/user/find/:id``, ``/user/create``, ``/user/update/:id``, ``/user/destroy/:id``,
``/user/:parentid/pets/add/:childid``, ``/user/:parentid/pets/remove/:childid`` and
``/user/:parentid/pets/replace``.

Unlike Sails, the associated model's policies apply too (``blueprints.association_policies``): reading
pets through a user (the populate route, ``?populate=pets``, the pets populated by default) needs
``pet/find``, and changing which pets a user has (add, remove, replace, ``"pets": [1, 2]`` in a create or
update) needs ``pet/update``. A refused association that the request named is answered with the
policy's refusal; one populated only by default is left out of the answer (a to-one association then
shows the related record's primary key, as with ``populate=false``), and the socket does not watch it.

Every action answers what Sails answers: 200 with the record(s), 404 ``"Not Found"``, or 400 with a
``{"code", "details", "message"}`` body naming the parameter at fault. A socket's own change is never
sent back to it (unless ``blueprints.mirror``); every other subscriber hears it, whether the change came
over a socket or over HTTP. A controller action named like a blueprint (``api/controllers/user.py``'s
``find``) takes the blueprint's routes, and the app's own routes always come first.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..web.request import Response
from .binding import MissingRecord, ModelBinding, _parsed
from .criteria import Criteria, UsageError, apply, parse_find

if TYPE_CHECKING:
    from .._app import App
    from .._config import BlueprintSettings
    from ..web.request import Request
    from ..web.router import Router

__all__ = ["ACTIONS", "install"]

log = logging.getLogger("trisails.orm")

_OPTIONS = ("select", "omit", "populate")


def install(app: App) -> None:
    """Add the blueprint routes of every model of ``app`` to its router, after all other routes."""
    settings = app.settings.blueprints
    shortcuts = settings.shortcuts if settings.shortcuts is not None else not app.settings.production
    for binding in app.models.values():
        routes = _routes(binding, settings, shortcuts=shortcuts)
        for method, path, blueprint, alias in routes:
            action = _override(app.router, binding.identity, blueprint) or ACTIONS[blueprint]
            options = {"model": binding.identity, "blueprint": blueprint}
            if alias is not None:
                options["alias"] = alias
            app.router.add_blueprint(method, path, action, f"{binding.identity}/{blueprint}", options)


def _routes(binding: ModelBinding, settings: BlueprintSettings, *, shortcuts: bool) -> list[tuple[str, str, str, str | None]]:
    found: list[tuple[str, str, str, str | None]] = []
    collections = [a.alias for a in binding.associations.values() if a.many]
    if shortcuts:  # first, or GET /user/:id would take /user/find
        base = f"{settings.prefix}/{binding.identity}"
        found += [
            ("GET", f"{base}/find", "find", None),
            ("GET", f"{base}/find/:id", "find_one", None),
            ("GET", f"{base}/create", "create", None),
            ("GET", f"{base}/update/:id", "update", None),
            ("GET", f"{base}/destroy/:id", "destroy", None),
        ]
        for alias in collections:
            found += [
                ("GET", f"{base}/:parentid/{alias}/add/:childid", "add", alias),
                ("GET", f"{base}/:parentid/{alias}/remove/:childid", "remove", alias),
                ("GET", f"{base}/:parentid/{alias}/replace", "replace", alias),
            ]
    if settings.rest:
        base = f"{settings.prefix}{settings.rest_prefix}/{binding.identity}"
        found += [
            ("GET", base, "find", None),
            ("GET", f"{base}/:id", "find_one", None),
            ("POST", base, "create", None),
            ("PATCH", f"{base}/:id", "update", None),
            ("PUT", f"{base}/:id", "update", None),
            ("DELETE", f"{base}/:id", "destroy", None),
        ]
        for alias in collections:
            found += [
                ("PUT", f"{base}/:parentid/{alias}/:childid", "add", alias),
                ("DELETE", f"{base}/:parentid/{alias}/:childid", "remove", alias),
                ("PUT", f"{base}/:parentid/{alias}", "replace", alias),
            ]
    if settings.rest or shortcuts:
        base = f"{settings.prefix}{settings.rest_prefix if settings.rest else ''}/{binding.identity}"
        for alias in binding.associations:
            found.append(("GET", f"{base}/:parentid/{alias}", "populate", alias))
    return found


def _override(router: Router, identity: str, blueprint: str) -> Callable[..., Any] | None:
    """The app's own action for a blueprint (``user/find``; ``user/findone`` or ``user/find_one``)."""
    names = [f"{identity}/{blueprint}"]
    if blueprint == "find_one":
        names.append(f"{identity}/findone")
    for name in names:
        if name in router.actions:
            return router.actions[name]
    return None


# --------------------------------------------------------------------------------------------- plumbing
def _binding(req: Request) -> ModelBinding:
    return req.app.models[req.options["model"]]


def _mirror(req: Request) -> Request | None:
    """Who to leave out of the messages: the requester, unless ``blueprints.mirror``."""
    return None if req.app.settings.blueprints.mirror else req


def _refuse(req: Request, res: Response, error: UsageError) -> None:
    res.bad_request(error.response_body(req.method, req.path, production=req.app.settings.production))


def _values(req: Request, *excluded: str) -> dict[str, Any]:
    if req.body is not None and not isinstance(req.body, dict) and req.body != "":
        raise UsageError("body", "The request body must be an object of attribute values.", code="E_INVALID_NEW_RECORD")
    return {k: v for k, v in req.all_params().items() if k not in excluded}


async def _refusal(req: Request, child: str, action: str) -> Response | None:
    """What the policies of ``<child>/<action>`` answer to ``req``, or ``None`` if they let it through.

    They run with ``req.options`` naming the associated model (``model``, ``blueprint``, and ``via``: the
    model the request went through), so a policy that looks at the model sees the one being read or
    changed; what they answer goes to a response of its own.
    """
    if not req.app.settings.blueprints.association_policies:
        return None
    scratch = Response(production=req.app.settings.production)
    options = req.options
    req.options = {**options, "model": child, "blueprint": action, "via": options.get("model")}
    try:
        allowed = await req.app.policies.check(f"{child}/{action}", req, scratch)
    finally:
        req.options = options
    return None if allowed else scratch


def _answer_as(res: Response, refusal: Response) -> None:
    """Answer with what a policy answered (its status, headers and body)."""
    res.status_code, res.headers, res.body = refusal.status_code, dict(refusal.headers), refusal.body
    res.as_json, res.sent = refusal.as_json, True


async def _readable(req: Request, res: Response, binding: ModelBinding, populate: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The associations the request may populate, as a ``populate`` tuple; ``None`` when it was refused
    (``res`` then holds the refusal). Associations named in ``populate`` that the associated model's
    ``find`` policies refuse refuse the request; those populated by default are left out."""
    named = populate is not None
    aliases = populate if populate is not None else tuple(binding.associations)
    allowed = []
    for alias in aliases:
        refusal = await _refusal(req, binding.associations[alias].target, "find")
        if refusal is None:
            allowed.append(alias)
        elif named:
            _answer_as(res, refusal)
            return None
    return tuple(allowed)


async def _writable(req: Request, res: Response, binding: ModelBinding, aliases: Any) -> bool:
    """Whether the request may change the collections ``aliases`` of ``binding`` (the associated model's
    ``update`` policies); if not, ``res`` holds the refusal."""
    for alias in aliases:
        association = binding.associations.get(alias)
        if association is not None and association.many:
            refusal = await _refusal(req, association.target, "update")
            if refusal is not None:
                _answer_as(res, refusal)
                return False
    return True


async def _shown(req: Request, binding: ModelBinding, record: dict[str, Any] | None) -> dict[str, Any] | None:
    """``record`` (populated) without the associations whose model's ``find`` policies refuse the request:
    a collection left out, a to-one record replaced by its primary key."""
    if record is None:
        return record
    shown = dict(record)
    for alias, association in binding.associations.items():
        if alias in shown and await _refusal(req, association.target, "find") is not None:
            if association.many:
                del shown[alias]
            elif isinstance(shown[alias], dict):
                shown[alias] = shown[alias].get(binding.models[association.target].pk)
    return shown


def _find_criteria(req: Request, fields: Any, params: dict[str, Any]) -> Criteria:
    """The criteria of a find or populate request, its ``limit`` clamped to ``blueprints.max_limit``."""
    settings = req.app.settings.blueprints
    criteria = parse_find(params, fields, default_limit=settings.default_limit)
    if criteria.limit is None or criteria.limit > settings.max_limit:
        log.debug("%s %s: limit lowered to blueprints.max_limit (%d)", req.method, req.path, settings.max_limit)
        criteria = dataclasses.replace(criteria, limit=settings.max_limit)
    return criteria


def _subscribe_deep(
    req: Request, binding: ModelBinding, records: list[dict[str, Any]], readable: tuple[str, ...] | None = None
) -> None:
    """Sails' ``subscribeDeep``, once per record found: watch every associated model (of those in
    ``readable``, when given), and subscribe to every populated record. Finding no record watches no
    associated model, as in Sails."""
    if not req.is_socket or not records:
        return
    auto_watch = req.app.settings.blueprints.auto_watch
    for alias, association in binding.associations.items():
        if readable is not None and alias not in readable:
            continue
        other = binding.models[association.target]
        if auto_watch:
            other.pubsub.watch(req)
        for record in records:
            value = record.get(alias)
            if isinstance(value, list):
                other.pubsub.subscribe(req, [v for v in value if isinstance(v, dict)])
            elif isinstance(value, dict):
                other.pubsub.subscribe(req, [value])


def _guarded(action: Callable[[Request, Response], Any]) -> Callable[[Request, Response], Any]:
    """Answer a :class:`UsageError` from the action with its 400 body."""

    async def guarded(req: Request, res: Response) -> None:
        try:
            await action(req, res)
        except UsageError as error:
            if res.sent:
                raise
            _refuse(req, res, error)

    guarded.__name__ = guarded.__qualname__ = action.__name__
    guarded.__doc__ = action.__doc__
    return guarded


# --------------------------------------------------------------------------------------------- actions
@_guarded
async def find(req: Request, res: Response) -> None:
    """``GET /user``: records matching the parameters; the socket is subscribed to each and watches."""
    binding = _binding(req)
    criteria = _find_criteria(req, binding.fields, req.all_params())
    readable = await _readable(req, res, binding, criteria.populate)
    if readable is None:
        return
    criteria = dataclasses.replace(criteria, populate=readable)
    records = await binding.datastore.run(binding.find_records, criteria)
    if req.is_socket:
        binding.pubsub.subscribe(req, records)
        if req.app.settings.blueprints.auto_watch:
            binding.pubsub.watch(req)
        _subscribe_deep(req, binding, records, readable)
    res.ok(records)


@_guarded
async def find_one(req: Request, res: Response) -> None:
    """``GET /user/:id``: one record (404 if there is none); the socket is subscribed to it."""
    binding = _binding(req)
    pk = binding.parse_id(req.params.get("id"))
    params = req.all_params()
    criteria = parse_find({k: params[k] for k in _OPTIONS if k in params}, binding.fields)
    readable = await _readable(req, res, binding, criteria.populate)
    if readable is None:
        return
    record = await binding.datastore.run(binding.one_record, pk, readable, criteria.select, criteria.omit)
    if record is None:
        res.not_found()
        return
    binding.pubsub.subscribe(req, [pk])
    _subscribe_deep(req, binding, [record], readable)
    res.ok(record)


@_guarded
async def create(req: Request, res: Response) -> None:
    """``POST /user``: a new record from the parameters; watchers hear ``created``."""
    req.rejoin = False  # a reconnecting client must never create the record again
    binding = _binding(req)
    values = _values(req, "_csrf")
    if not await _writable(req, res, binding, values):
        return
    change = await binding.create(values)
    if req.is_socket:
        binding.pubsub.subscribe(req, [change.id])
    binding.pubsub.introduce(change.id)
    binding.pubsub.created(change, _mirror(req))
    res.ok(await _shown(req, binding, change.after))


@_guarded
async def update(req: Request, res: Response) -> None:
    """``PATCH /user/:id``: change a record; its subscribers hear ``updated``."""
    req.rejoin = False
    binding = _binding(req)
    if req.method == "PUT":
        log.debug("PUT %s: use PATCH to update a record (Sails deprecates PUT for it)", req.path)
    pk = binding.parse_id(req.params.get("id"))
    values = _values(req, "id", "_csrf")
    if not await _writable(req, res, binding, values):
        return
    change = await binding.update(pk, values)
    if change is None:
        res.not_found()
        return
    binding.pubsub.subscribe(req, [pk])
    binding.pubsub.updated(change, _mirror(req))
    res.ok(await _shown(req, binding, change.after))


@_guarded
async def destroy(req: Request, res: Response) -> None:
    """``DELETE /user/:id``: delete a record and answer it as it was; subscribers hear ``destroyed``."""
    req.rejoin = False
    binding = _binding(req)
    pk = binding.parse_id(req.params.get("id"))
    change = await binding.destroy(pk)
    if change is None:
        res.not_found()
        return
    binding.pubsub.destroyed(change, _mirror(req))
    binding.pubsub.retire(pk)
    res.ok(await _shown(req, binding, change.before))


async def _collection(req: Request, res: Response, **how: Any) -> None:
    req.rejoin = False  # add, remove and replace are writes: never repeated by a reconnect
    binding = _binding(req)
    alias = req.options["alias"]
    pk = binding.parse_id(req.params.get("parentid"), "parentid")
    if not await _writable(req, res, binding, [alias]):
        return
    try:
        change = await binding.set_members(pk, alias, **how)
    except MissingRecord:
        if "replace" in how:
            raise  # a list naming a missing record is a bad list
        change = None
    if change is None:
        res.not_found()
        return
    binding.pubsub.collection_changed(change, _mirror(req))
    if req.is_socket and "remove" not in how:
        binding.pubsub.subscribe(req, [pk])
        if "add" in how:
            binding.models[binding.associations[alias].target].pubsub.subscribe(req, how["add"])
    res.ok(await _shown(req, binding, change.after))


@_guarded
async def add(req: Request, res: Response) -> None:
    """``PUT /user/:parentid/pets/:childid``: add a record to a collection; the parent's room hears ``addedTo``."""
    binding = _binding(req)
    child = binding.models[binding.associations[req.options["alias"]].target]
    await _collection(req, res, add=[child.parse_id(req.params.get("childid"), "childid")])


@_guarded
async def remove(req: Request, res: Response) -> None:
    """``DELETE /user/:parentid/pets/:childid``: take a record out of a collection (``removedFrom``)."""
    binding = _binding(req)
    child = binding.models[binding.associations[req.options["alias"]].target]
    await _collection(req, res, remove=[child.parse_id(req.params.get("childid"), "childid")])


@_guarded
async def replace(req: Request, res: Response) -> None:
    """``PUT /user/:parentid/pets``: the collection becomes exactly the ids sent (a JSON array body, or
    the alias as a parameter)."""
    alias = req.options["alias"]
    ids = req.body if isinstance(req.body, list) else req.param(alias)
    if isinstance(ids, str):
        ids = _parsed(ids, alias, "E_INVALID_VALUES_TO_SET")
    if not isinstance(ids, list):
        raise UsageError(alias, f"Send the ids `{alias}` should hold, as a list: [1, 2].", code="E_INVALID_VALUES_TO_SET")
    await _collection(req, res, replace=ids)


@_guarded
async def populate(req: Request, res: Response) -> None:
    """``GET /user/:parentid/pets``: the associated record(s), filtered and paged like a find."""
    binding = _binding(req)
    alias = req.options["alias"]
    association = binding.associations[alias]
    child = binding.models[association.target]
    pk = binding.parse_id(req.params.get("parentid"), "parentid")
    params = {k: v for k, v in req.all_params().items() if k not in ("parentid", "populate")}
    criteria = _find_criteria(req, child.fields, params)
    refusal = await _refusal(req, association.target, "find")
    if refusal is not None:
        _answer_as(res, refusal)
        return

    def load() -> tuple[bool, Any]:
        parent = binding.entity.get(**{binding.pk: pk})
        if parent is None:
            return False, None
        value = getattr(parent, alias)
        shape = dict(populate=(), select=criteria.select, omit=criteria.omit)
        if association.many:
            rows = apply(value.select(), Criteria(**{**criteria.__dict__, "populate": ()}), child.fields)
            return True, [child.record(r, **shape) for r in rows]
        return True, None if value is None else child.record(value, **shape)

    found, value = await binding.datastore.run(load)
    if not found or value is None:
        res.not_found()
        return
    binding.pubsub.subscribe(req, [pk])
    if req.is_socket:
        if req.app.settings.blueprints.auto_watch:  # as subscribeDeep of the parent: every associated model
            for association_ in binding.associations.values():  # that the request may read
                if await _refusal(req, association_.target, "find") is None:
                    binding.models[association_.target].pubsub.watch(req)
        child.pubsub.subscribe(req, value if isinstance(value, list) else [value])
    res.ok(value)


ACTIONS: dict[str, Callable[..., Any]] = {
    "find": find,
    "find_one": find_one,
    "create": create,
    "update": update,
    "destroy": destroy,
    "add": add,
    "remove": remove,
    "replace": replace,
    "populate": populate,
}
