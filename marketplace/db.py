"""The declarative base, the session's unit of work and after-commit hooks.

Services own their transaction: `with transaction():` commits once at the outermost level
(nested blocks join it) and then runs the callbacks registered with `on_commit`, so jobs and
other side effects never see uncommitted rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData, event, insert, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, make_transient_to_detached
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        # Let SQLAlchemy, not the driver, begin transactions, so SAVEPOINTs work.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


# Set while an outermost `transaction()` block runs: SQLite then begins with the write lock
# (BEGIN IMMEDIATE), so a block that reads before it writes can never fail to upgrade its
# snapshot when another connection committed meanwhile; plain reads stay deferred.
_write_intent: ContextVar[bool] = ContextVar("marketplace_write_intent", default=False)


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection: Any) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")


_DEPTH = "marketplace.tx_depth"
_HOOKS = "marketplace.on_commit"


@contextmanager
def transaction(*, keep_loaded: bool = False) -> Iterator[Any]:
    """Run the block in one database transaction; the outermost block commits.

    With `keep_loaded`, what the block loaded and wrote is not expired by the commit, so the
    caller can answer from it without reading it all back (it is what this block committed).
    """
    session = db.session()
    depth = session.info.get(_DEPTH, 0)
    token = None
    if depth == 0 and session.get_bind().dialect.name == "sqlite":
        if session.in_transaction() and not (session.new or session.dirty or session.deleted):
            # end a read snapshot so the block begins with the write lock (what it read stays
            # loaded with `keep_loaded`, as across the block's own commit)
            _commit(session, keep_loaded=keep_loaded)
        token = _write_intent.set(True)
    session.info[_DEPTH] = depth + 1
    try:
        yield session
        if depth == 0:
            _commit(session, keep_loaded=keep_loaded)
    except BaseException:
        if depth == 0:
            session.rollback()
            session.info.pop(_HOOKS, None)
        raise
    finally:
        session.info[_DEPTH] = depth
        if token is not None:
            _write_intent.reset(token)
    if depth == 0:
        for hook, args, kwargs in session.info.pop(_HOOKS, []):
            hook(*args, **kwargs)


def _commit(session: Any, *, keep_loaded: bool) -> None:
    expire_on_commit = session.expire_on_commit
    session.expire_on_commit = expire_on_commit and not keep_loaded
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire_on_commit


def insert_unless_present(model: Any, index_elements: list[str], **values: Any) -> Any:
    """`INSERT … ON CONFLICT (index_elements) DO NOTHING` of one row, for the session's database
    (PostgreSQL or SQLite): add `.returning(...)` to learn whether this statement inserted it."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).values(**values).on_conflict_do_nothing(index_elements=index_elements)


M = TypeVar("M", bound=Base)


def insert_loaded(model: type[M], rows: list[dict[str, Any]]) -> list[M]:
    """INSERT the rows in one statement and return them, in the rows' order, as objects of the
    session as if just loaded: a hot path's writes without the unit of work's flush (whose
    fixed cost is paid again on every flush). A column a row leaves out gets its default."""
    if not rows:
        return []
    columns = _insertable_columns(model)
    full = [
        {key: row[key] if key in row else default() for key, default in columns} for row in rows
    ]
    ids = db.session.execute(_insert_returning_ids(model), full).scalars().all()
    loaded = []
    for id_, values in zip(ids, full, strict=True):
        instance = model(id=id_, **values)
        make_transient_to_detached(instance)  # its values are what the row holds now
        db.session.add(instance)
        loaded.append(instance)
    return loaded


@functools.cache
def _insertable_columns(model: type[Base]) -> list[tuple[str, Callable[[], Any]]]:
    """Each column but the id, with how to make its default (Python-side `default=` or None)."""
    columns: list[tuple[str, Callable[[], Any]]] = []
    for prop in inspect(model).column_attrs:
        column = prop.columns[0]
        if column.primary_key:
            continue
        if prop.key != column.key:
            raise TypeError(f"{model.__name__}.{prop.key}: attribute and column names differ")
        default = column.default
        if default is None and column.server_default is not None:
            # a NULL sent for it would override the server's default, not get it
            raise TypeError(f"{model.__name__}.{prop.key}: only the server knows its default")
        if default is None:
            columns.append((prop.key, lambda: None))
        elif default.is_callable:
            columns.append((prop.key, functools.partial(default.arg, None)))
        elif default.is_scalar:
            columns.append((prop.key, functools.partial(lambda value: value, default.arg)))
        else:
            raise TypeError(f"{model.__name__}.{prop.key}: a SQL default is not known here")
    return columns


@functools.cache
def _insert_returning_ids(model: type[Base]) -> Any:
    table = model.__table__
    return insert(table).returning(table.c.id, sort_by_parameter_order=True)


F = TypeVar("F", bound=Callable[..., Any])


def reads_only(view: F) -> F:
    """Run a view that only reads on an autocommit connection (PostgreSQL).

    Each statement is then its own transaction: no BEGIN before the first and no ROLLBACK
    after the last, two round trips fewer. Reads see what they saw before, since PostgreSQL's
    READ COMMITTED takes a snapshot per statement anyway. A write in such a view would
    commit statement by statement, so only views that never write may use it. The pool
    restores the isolation level when the connection is returned. SQLite is in-process, so
    it keeps its transactions.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = db.session()
        if not session.in_transaction() and session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def in_transaction() -> bool:
    """Inside a `transaction()` block (so `on_commit` may be used)."""
    return bool(db.session().info.get(_DEPTH, 0))


def on_commit_collect(hook: Callable[[list[Any]], Any], item: Any) -> None:
    """Add `item` to the list one `hook(items)` call gets once the surrounding `transaction()`
    has committed (a rollback drops the list with the other hooks)."""
    session = db.session()
    if session.info.get(_DEPTH, 0) == 0:
        raise RuntimeError("on_commit_collect() outside transaction()")
    hooks = session.info.setdefault(_HOOKS, [])
    for registered, args, _ in hooks:
        if registered is hook:
            args[0].append(item)
            return
    hooks.append((hook, ([item],), {}))


def on_commit(hook: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call `hook(*args, **kwargs)` once the surrounding `transaction()` has committed."""
    session = db.session()
    if session.info.get(_DEPTH, 0) == 0:
        raise RuntimeError("on_commit() outside transaction()")
    session.info.setdefault(_HOOKS, []).append((hook, args, kwargs))
