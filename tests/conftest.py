"""Test fixtures: a migrated database per backend (SQLite always, PostgreSQL when TEST_DATABASE_URL is set),
emptied after each test, and an API client bound to it."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel
from starlette.testclient import TestClient

import core.models  # noqa: F401
from api.app import build_services, create_app
from api.auth import Role, issue_token
from core.db import drop_schema, make_engine, migrate, normalise_url
from core.settings import Settings

T = TypeVar("T")
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A fresh database migrated with Alembic: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}")
        migrate(engine)
        yield engine
        engine.dispose()
        return
    url = normalise_url(TEST_DATABASE_URL or "")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # TEST_DATABASE_URL was set: an unreachable PostgreSQL is a failure, not a skip
        pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}")
    engine = make_engine(url, schema=schema, lock_timeout_s=60, application_name=schema)
    migrate(engine)
    yield engine
    engine.dispose()
    drop_schema(admin, schema)
    admin.dispose()


def empty_tables(engine: Engine) -> None:
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))


def statements_during(engine: Engine, work: Callable[[], object]) -> list[str]:
    """The SQL statements `engine` sent while `work` ran (to check how a domain function uses the database)."""
    from sqlalchemy import event

    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The test database, emptied after the test."""
    yield engine
    empty_tables(engine)


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    with Session(db, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def settings() -> Settings:
    return Settings(gridcrew_env="test", secret_key="test-secret-" + "x" * 20)


@pytest.fixture
def client(db: Engine, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, build_services(settings, db))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    return {
        "admin": issue_token(Role.ADMIN, settings=settings),
        "dispatcher": issue_token(Role.DISPATCHER, settings=settings),
    }


class Api:
    """Posts GraphQL documents as a given role; returns the parsed JSON body."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client, self.settings = client, settings

    def token(self, role: str, crew_id: int | None = None) -> str:
        return issue_token(Role(role.upper()), crew_id=crew_id, settings=self.settings)

    def __call__(self, query: str, variables: dict[str, Any] | None = None, role: str | None = "dispatcher",
                 crew_id: int | None = None, status: int = 200) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token(role, crew_id)}"} if role else {}
        response = self.client.post("/graphql", json={"query": query, "variables": variables or {}},
                                    headers=headers)
        assert response.status_code == status, response.text
        return response.json()


@pytest.fixture
def api(client: TestClient, settings: Settings) -> Api:
    return Api(client, settings)


@pytest.fixture(scope="session")
def intake_context() -> Any:
    from dispatch.intake import IntakeContext
    from dispatch.rules import load_rules
    from geo.areas import load_region
    from geo.geocoding import make_geocoder

    return IntakeContext(rules=load_rules(), region=load_region(), geocoder=make_geocoder())


def run_at_once(count: int, work: Callable[[Session], T], engine: Engine) -> list[T]:
    """Runs `work` in `count` threads released together, each with its own session, as racing clients
    would; re-raises the first failure, returns the results."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    failures: list[BaseException] = []

    def one() -> None:
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            try:
                results.append(work(own))
            except BaseException as exc:  # noqa: BLE001  (handed to the test below)
                failures.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results
