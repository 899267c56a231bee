"""The database engine, sessions and migrations: SQLite by default, PostgreSQL via DATABASE_URL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from alembic.config import Config
from pydantic_core import PydanticUndefined
from sqlalchemy import BindParameter, Insert, Table, TextClause, bindparam, event, insert, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import Session, SQLModel, create_engine

from alembic import command
from core.clock import as_utc
from core.settings import PROJECT_ROOT, get_settings

_engines: dict[tuple[str, str | None], Engine] = {}
R = TypeVar("R", bound=SQLModel)


def normalise_url(url: str) -> str:
    """Accept the usual `postgres://` spellings and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, schema: str | None = None, lock_timeout_s: int | None = None,
                application_name: str = "gridcrew") -> Engine:
    """A new engine; `schema` confines a PostgreSQL engine to one schema (each test run has its own).

    `lock_timeout_s` makes a PostgreSQL statement that waits longer than that for a lock fail instead of waiting
    for ever (the tests set it, so a stuck connection fails a test rather than hanging the suite)."""
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        options = [f"-csearch_path={schema}"] if schema else []
        if lock_timeout_s:
            options.append(f"-clock_timeout={lock_timeout_s}s")
        connect_args: dict[str, Any] = {} if "application_name" in parsed.query else {"application_name":
                                                                                       application_name}
        if options:
            connect_args["options"] = " ".join(options)
        kwargs["connect_args"] = connect_args
    # Parameters stay out of error messages (and so out of logs): they can be a caller's phone or address.
    engine = create_engine(url, hide_parameters=True, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; synchronous=FULL keeps every commit durable.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def id_list(name: str) -> BindParameter[Any]:
    """A parameter for `column.in_(...)` given at execution (`{name: [...]}`), so that a statement with an IN list
    can be built once and kept: on a hot path, building a statement costs about as much as running it."""
    return bindparam(name, expanding=True)


def new_row(model: type[R], values: dict[str, Any]) -> R:
    """The unsaved row `model(**values)` builds, for values that are already checked (intake's drafts): without
    SQLModel's field-by-field set-up through the ORM's instrumentation, which costs some 40 times as much (a
    quarter of a millisecond for a ticket, on every report). Unnamed fields get their defaults (our tables give
    mutable ones by `default_factory`, so no two rows share one)."""
    manager, defaults, factories = _construction(model)
    if not manager.mapper.configured:  # (what the constructor does first: attributes work once mappers are set up)
        configure_mappers()
    row: R = manager.new_instance()
    row.__dict__.update(defaults)
    row.__dict__.update({name: make() for name, make in factories.items() if name not in values})
    row.__dict__.update(values)
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    return row


@lru_cache
def _construction(model: type[SQLModel]) -> tuple[Any, dict[str, Any], dict[str, Callable[[], Any]]]:
    defaults = {name: f.default for name, f in model.model_fields.items()
                if f.default_factory is None and f.default is not PydanticUndefined}
    factories = {name: f.default_factory for name, f in model.model_fields.items() if f.default_factory is not None}
    return manager_of_class(model), defaults, factories  # type: ignore[return-value]


def insert_as_loaded(session: Session, rows: Sequence[R], unless_present: str | None = None) -> list[R]:
    """Insert new rows of one table (with an `id` key the database gives) in one statement, outside the session's
    unit of work, and make them part of the session as if it had loaded them: what is changed on them later is
    flushed as an update. For hot paths (intake): a unit-of-work flush costs several times the statement. Whatever
    listens to flushes (the change log) does not hear of these rows.

    With `unless_present` (a column with a unique constraint), a row whose value there is stored already is left
    out, as is one that a concurrent transaction is storing (PostgreSQL waits for it to end). Returns the rows
    inserted, in their order."""
    if not rows:
        return []
    table = type(rows[0]).__table__  # type: ignore[attr-defined]
    connection = session.connection()
    present: set[Any] = set()
    if connection.dialect.name == "postgresql":
        # The rows as one JSON parameter: one statement text whatever their number, which psycopg and PostgreSQL
        # parse and plan once (a VALUES list is a new statement for every number of rows), and encoding them is
        # cheaper than binding each value. Inserted in order, so their ids ascend in it.
        encoded = json.dumps([_values(table, row) for row in rows], default=_json)
        returned = connection.execute(_insert_from_json(table, unless_present), {"rows": encoded}).all()
        if unless_present:
            stored = {key for _id, key in returned}
            present = {key for row in rows if (key := getattr(row, unless_present)) is not None} - stored
        ids = sorted(row_id for row_id, *_key in returned)
    else:  # SQLite: one writer at a time, so what is present now stays so until the insert
        if unless_present:
            keys = [key for row in rows if (key := getattr(row, unless_present)) is not None]
            column = table.c[unless_present]
            present = set(connection.execute(select(column).where(column.in_(keys))).scalars()) if keys else set()
        fresh = [_values(table, row) for row in rows if not _present(row, unless_present, present)]
        ids = connection.execute(_insert_returning_id(table), fresh).scalars().all() if fresh else []
    inserted = [row for row in rows if not _present(row, unless_present, present)]
    for row, row_id in zip(inserted, ids, strict=True):
        row.id = row_id  # type: ignore[attr-defined]
        make_transient_to_detached(row)
        session.add(row)
    return inserted


def _present(row: SQLModel, column: str | None, present: set[Any]) -> bool:
    return column is not None and getattr(row, column) in present


def _values(table: Table, row: SQLModel) -> dict[str, Any]:
    return {column.name: getattr(row, column.key) for column in table.columns if column.key != "id"}


@lru_cache
def _insert_returning_id(table: Table) -> Insert:
    return insert(table).returning(table.c.id, sort_by_parameter_order=True)


@lru_cache
def _insert_from_json(table: Table, unless_present: str | None) -> TextClause:
    names = ", ".join(c.name for c in table.columns if c.key != "id")
    picked = ", ".join(f"r.{c.name}" for c in table.columns if c.key != "id")
    skip = f" ON CONFLICT ({unless_present}) DO NOTHING RETURNING id, {unless_present}" if unless_present \
        else " RETURNING id"
    return text(f"INSERT INTO {table.name} ({names}) SELECT {picked} FROM json_populate_recordset("  # noqa: S608
                f"NULL::{table.name}, CAST(:rows AS json)) WITH ORDINALITY AS r ORDER BY r.ordinality{skip}")


def _json(value: object) -> str:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    raise TypeError(f"{type(value).__name__} is not stored as JSON here")


def get_engine() -> Engine:
    """The process-wide engine for DATABASE_URL."""
    url = get_settings().database_url
    key = (url, None)
    if key not in _engines:
        _engines[key] = make_engine(url)
    return _engines[key]


def set_engine(engine: Engine) -> None:
    """Make `engine` the process-wide engine (tests and the CLI point the app at their own database)."""
    _engines[(get_settings().database_url, None)] = engine


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config() -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    return config


def migrate(engine: Engine | None = None, revision: str = "heads") -> None:
    """Bring the database to `revision` (every head) with Alembic: the only way any database gets its tables."""
    engine = engine or get_engine()
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def drop_schema(admin: Engine, schema: str) -> None:
    """Drop a test schema, first ending any connection that a stray thread or process left open (tests and
    benches name their connections after their schema), so the drop can't wait on a lock for ever."""
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": schema})
        connection.execute(text("SET LOCAL lock_timeout = '60s'"))
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
