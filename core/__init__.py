"""What every package shares: settings, the database engine and sessions, the clock, column types."""
