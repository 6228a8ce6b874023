"""``migrate = "alter"``: bring existing tables up to the models by adding the columns they lack.

Pony creates missing tables but never changes an existing one. Sails' ``alter`` does more (it copies
the data into new tables), and a model that gains an attribute is the everyday case, so trisails adds
the missing columns itself, with ``ALTER TABLE ... ADD COLUMN``, before Pony creates what else is
missing (tables, indexes, foreign keys) and checks the result. What it will not do, on purpose, since
each can lose data or guess wrong:

- **drop** a column no attribute maps any more (it is kept, and a warning names it);
- **rename** a column (a renamed attribute is a new column; the old one is kept, with its data);
- **retype** a column (an attribute whose type changed keeps its old column as it is).

A new column that must hold a value (``Required``, or Pony's non-null ``Optional(str)``) is filled in
the existing rows with the attribute's ``default=`` when it has a constant one, ``""`` for an
``Optional`` text, and otherwise only an empty table can take it: the lift stops with a
:class:`AlterError` that says what to change.

Everything here runs in a worker thread, inside the datastore's schema lock.
"""

from __future__ import annotations

import logging
from typing import Any

from pony import orm

from .._errors import ConfigError

__all__ = ["AlterError", "add_missing_columns"]

log = logging.getLogger("trisails.orm")


class AlterError(ConfigError):
    """``migrate = "alter"`` cannot add a column the models need: the message names the table, the
    column and why, and what to change (a default, ``Optional``, or the table by hand)."""


def add_missing_columns(db: orm.Database) -> list[str]:
    """Add to the existing tables of ``db`` (mapped, not yet checked) the columns the models need and
    they lack; returns what was added, as ``table.column``, and warns of columns no model maps."""
    added: list[str] = []
    with orm.db_session(ddl=True):
        connection = db._get_cache().prepare_connection_for_query_execution()
        provider = db.provider
        assert provider is not None and db.schema is not None
        for table in db.schema.order_tables_to_create():
            if table.exists(provider, connection, case_sensitive=False) is None:
                continue  # Pony creates it whole
            existing = _columns_of(provider, connection, table.name)
            lower = {name.lower() for name in existing}
            for column in table.column_list:
                if column.name.lower() in lower:
                    continue
                for sql in _add_column_sql(provider, connection, table, column):
                    log.info("migrate=alter: adding the column %s.%s: %s", table.name, column.name, sql)
                    try:
                        provider.execute(connection.cursor(), sql)
                    except Exception as error:
                        raise AlterError(
                            f"migrate=alter could not add the column {column.name!r} to the table {table.name!r}: "
                            f"{str(error).strip()} (the statement was: {sql})"
                        ) from error
                added.append(f"{table.name}.{column.name}")
            mapped = {column.name.lower() for column in table.column_list}
            for name in existing:
                if name.lower() not in mapped:
                    log.warning(
                        "migrate=alter: the table %s has the column %s, which no attribute maps any more; it is kept "
                        "(alter never drops, renames or retypes a column). If it is NOT NULL without a default, "
                        "new records will fail until you drop it: ALTER TABLE %s DROP COLUMN %s",
                        table.name, name, provider.quote_name(table.name), provider.quote_name(name),
                    )
    return added


def _columns_of(provider: Any, connection: Any, table: str) -> list[str]:
    """The names of ``table``'s columns, as the database has them (portable: an empty SELECT)."""
    cursor = connection.cursor()
    provider.execute(cursor, f"SELECT * FROM {provider.quote_name(table)} WHERE 1 = 0")
    return [description[0] for description in cursor.description]


def _count(provider: Any, connection: Any, table: str) -> int:
    cursor = connection.cursor()
    provider.execute(cursor, f"SELECT COUNT(*) FROM {provider.quote_name(table)}")
    return int(cursor.fetchone()[0])


def _add_column_sql(provider: Any, connection: Any, table: Any, column: Any) -> list[str]:
    """The statements that add ``column`` (``ALTER TABLE ... ADD COLUMN``, and on SQLite the unique
    index it cannot add inline), with a default that fills the existing rows when the column cannot be
    null; :class:`AlterError` when no value can be made up for them."""
    attribute = getattr(column.converter, "attr", None)
    sqlite = provider.dialect == "SQLite"
    quote = provider.quote_name
    saved = column.sql_default, column.is_unique
    try:
        if column.is_not_null and column.sql_default in (None, True, False):
            fill = _fill_value(attribute, sqlite)
            if fill is None:
                rows = _count(provider, connection, table.name)
                relation = attribute is not None and attribute.is_relation
                if rows or (sqlite and relation):
                    name = attribute.name if attribute is not None else column.name
                    raise AlterError(
                        f"migrate=alter cannot add the column {column.name!r} to the table {table.name!r}: it must "
                        f"hold a value, and there is none to give the existing rows. Give {name} a constant "
                        f'default= (Required(str, default="")), make it Optional, add the column yourself '
                        f"(ALTER TABLE ... ADD COLUMN ... DEFAULT ...), or start the table afresh "
                        f'(migrate = "drop" deletes its data)'
                    )
                if sqlite:
                    fill = "''"  # SQLite wants a default even for an empty table; its columns take any value
            column.sql_default = fill
        if sqlite:
            column.is_unique = False  # SQLite cannot add a UNIQUE column: a unique index follows
        statements = [f"ALTER TABLE {quote(table.name)} ADD COLUMN {column.get_sql()}"]
    finally:
        column.sql_default, column.is_unique = saved
    if sqlite and column.is_unique:
        index = quote(f"unq_{table.name}__{column.name}".lower())
        statements.append(f"CREATE UNIQUE INDEX {index} ON {quote(table.name)} ({quote(column.name)})")
    return statements


def _fill_value(attribute: Any, sqlite: bool) -> str | None:
    """The SQL literal existing rows get in a new non-null column: the attribute's constant default,
    ``''`` for an Optional text, else ``None`` (no value can be made up)."""
    if attribute is None:
        return None
    default = attribute.default
    if callable(default):
        default = None
    if default is None and not attribute.is_required and attribute.py_type is str:
        default = ""
    if isinstance(default, bool):
        return ("1" if default else "0") if sqlite else ("true" if default else "false")
    if isinstance(default, (int, float)):
        return repr(default)
    if isinstance(default, str):
        return "'" + default.replace("'", "''") + "'"
    return None
