"""Settings read from the environment (and a `.env` file): database, secrets, region, rules, services."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET = "dev-only-secret-change-me-in-production"
MIN_PRODUCTION_SECRET = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # "development" serves the GraphQL explorer and accepts the default secret; "production" does neither.
    gridcrew_env: str = Field(default="development")
    database_url: str = Field(default=f"sqlite:///{PROJECT_ROOT / 'var' / 'gridcrew.sqlite'}")
    secret_key: str = Field(default=DEFAULT_SECRET)
    token_ttl_hours: float = 12.0
    # Path to a region JSON (see geo/data/demo_region.json); None means the shipped demo region.
    region_file: str | None = None
    # Path to a JSON file overriding the service rules of dispatch/rules.py (SLA minutes, keywords, ...).
    rules_file: str | None = None
    # Service quality: repeat-caller risk levels and quality settings (see quality/data/); None means the defaults.
    risk_rules_file: str | None = None
    quality_settings_file: str | None = None
    # A geopy-compatible geocoder (Nominatim server URL); None means the offline gazetteer.
    geocoder_url: str | None = None
    routing_url: str | None = None
    redis_url: str | None = None
    mqtt_url: str | None = None
    # Upper bound of page sizes on every connection.
    max_page_size: int = 200
    log_level: str = "INFO"
    # Limits on what one request may ask (api/limits.py): nesting of selections, fields selected (fragments
    # expanded, aliases counted), request body bytes (413 beyond), client mutations per syncPush batch.
    max_query_depth: int = Field(default=12, ge=1)
    max_query_complexity: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    sync_max_batch: int = Field(default=500, ge=1)
    # createTicket's group commit (dispatch/intake_queue.py): writer threads per process, reports per transaction.
    intake_writers: int = Field(default=4, ge=1, le=32)
    intake_max_batch: int = Field(default=8, ge=1, le=500)
    # Right after a batch, how long a writer waits at most for as many more reports as that batch answered.
    intake_linger_ms: float = Field(default=10.0, ge=0, le=1000)
    # Background re-plans of a region after emergencies (dispatch/replanner.py): at most one this often, whichever
    # process committed the last plan (each emergency already has its crew from the fast insertion).
    replan_min_interval_seconds: float = Field(default=60.0, ge=0)
    # Public fields (trackTicket, submitFeedback, outageSummary, ticketUpdated) per client IP and minute
    # (api/ratelimit.py): in Redis when REDIS_URL is set, shared by every worker; else in this process.
    public_rate_limit_per_minute: int = Field(default=60, ge=1)
    # How often a process re-reads revoked tokens and devices (api/revocation.py); its own revocations act at once.
    revocation_refresh_seconds: float = Field(default=5.0, ge=0)
    # Expose GET /metrics (Prometheus text format).
    metrics_enabled: bool = True

    @property
    def production(self) -> bool:
        return self.gridcrew_env.lower() in {"prod", "production"}

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.production and self.secret_key == DEFAULT_SECRET:
            raise ValueError("SECRET_KEY must be set in production (refusing the development default)")
        if self.production and len(self.secret_key) < MIN_PRODUCTION_SECRET:
            raise ValueError(f"SECRET_KEY must be at least {MIN_PRODUCTION_SECRET} characters in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
