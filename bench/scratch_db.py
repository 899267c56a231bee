"""Scratch PostgreSQL databases for the benches: dropped and created anew for every run, and kept analyzed as
autovacuum would keep them."""

from __future__ import annotations

import threading

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


# autovacuum's defaults: a table is analyzed once more than this many rows, plus this share of its rows, changed
# since its last analysis
AUTO_ANALYZE_ROWS, AUTO_ANALYZE_SHARE = 50, 0.1


class AutoAnalyze:
    """Statistics as autovacuum keeps them in production, for a scratch database on a server whose autovacuum
    is off (as on some test machines): without them, the planner takes a fresh table for a handful of rows and
    reads a storm's window through the first index that names its columns. While entered, a thread analyzes,
    every second, each table whose rows changed since its last analysis by more than autovacuum's default
    threshold. Where autovacuum is on, it does nothing: the server does it."""

    def __init__(self, url: str, every_seconds: float = 1.0) -> None:
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.every_seconds = every_seconds
        self.analyzed = 0  # tables analyzed so far
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> AutoAnalyze:
        with self.engine.connect() as connection:
            server_does_it = connection.execute(text("SHOW autovacuum")).scalar() == "on"
        if not server_does_it:
            self._thread = threading.Thread(target=self._run, name="auto-analyze", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.engine.dispose()

    @property
    def active(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        due = text("SELECT relname FROM pg_stat_user_tables WHERE n_mod_since_analyze > "
                   ":rows + :share * GREATEST(n_live_tup, 0) ORDER BY relname")
        while not self._stop.wait(self.every_seconds):
            with self.engine.connect() as connection:
                for (table,) in connection.execute(due, {"rows": AUTO_ANALYZE_ROWS, "share": AUTO_ANALYZE_SHARE}):
                    connection.execute(text(f'ANALYZE "{table}"'))
                    self.analyzed += 1
