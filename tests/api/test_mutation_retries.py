"""A mutation whose transaction loses a race (a PostgreSQL deadlock) is run again instead of answering INTERNAL:
the database undid all of it, exactly as if the client had retried."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from api.graphql.core import BaseMutation, lost_a_race


def real_deadlock(engine: Engine) -> DBAPIError:
    """Two transactions locking two rows in opposite orders: PostgreSQL aborts one of them."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS race_probe (id int PRIMARY KEY)"))
        connection.execute(text("INSERT INTO race_probe VALUES (1), (2) ON CONFLICT DO NOTHING"))
    failures: list[DBAPIError] = []
    barrier = threading.Barrier(2)

    def lock(first: int, second: int) -> None:
        with engine.connect() as connection, connection.begin():
            connection.execute(text("SELECT id FROM race_probe WHERE id = :i FOR UPDATE"), {"i": first})
            barrier.wait()
            try:
                connection.execute(text("SELECT id FROM race_probe WHERE id = :i FOR UPDATE"), {"i": second})
            except DBAPIError as error:
                failures.append(error)

    threads = [threading.Thread(target=lock, args=order) for order in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE race_probe"))
    assert len(failures) == 1
    return failures[0]


def test_a_mutation_that_loses_a_deadlock_is_run_again_and_succeeds(db: Engine) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("deadlock detection is PostgreSQL's; SQLite serialises writers")
    deadlock = real_deadlock(db)
    assert lost_a_race(deadlock)
    runs: list[int] = []

    class Flaky(BaseMutation):
        class Arguments:
            pass

        @classmethod
        def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
            runs.append(1)
            if len(runs) == 1:
                raise deadlock
            return {"done": True}

    with Session(db) as session:
        info = SimpleNamespace(context=SimpleNamespace(session=session))
        assert Flaky.mutate_now(None, info, {}) == {"done": True, "errors": []}
    assert len(runs) == 2


def test_other_database_errors_are_not_retried_and_answer_internal(db: Engine) -> None:
    runs: list[int] = []

    class Broken(BaseMutation):
        class Arguments:
            pass

        @classmethod
        def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
            runs.append(1)
            info.context.session.execute(text("SELECT * FROM no_such_table"))
            return {}

    with Session(db) as session:
        info = SimpleNamespace(context=SimpleNamespace(session=session))
        answer = Broken.mutate_now(None, info, {})
    assert len(runs) == 1 and answer["errors"][0].code.value == "INTERNAL"
