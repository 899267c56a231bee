"""Scratch PostgreSQL databases for the benches: dropped and created anew for every run."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def fresh_database(url: str, drop_only: bool = False) -> None:
    """Drop the database of `url` (closing its connections) and, unless `drop_only`, create it empty."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        if not drop_only:
            connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
