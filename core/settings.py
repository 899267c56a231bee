"""Settings read from the environment (and a `.env` file): database, secrets, region, rules, services."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET = "dev-only-secret-change-me-in-production"


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

    @property
    def production(self) -> bool:
        return self.gridcrew_env.lower() in {"prod", "production"}

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.production and self.secret_key == DEFAULT_SECRET:
            raise ValueError("SECRET_KEY must be set in production (refusing the development default)")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
