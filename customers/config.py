"""Thresholds of incidents, ETR publication, notifications and public tracking: settings from the environment.

Every figure is a default a utility may change (prefix `GRIDCREW_CUSTOMERS_`, e.g.
`GRIDCREW_CUSTOMERS_INCIDENT_RADIUS_KM=1.0`).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class CustomerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDCREW_CUSTOMERS_", env_file=".env", extra="ignore")

    # ---- incidents (trouble-call analysis)
    # Calls without a known network group when within this distance of a call of the group ...
    incident_radius_km: float = 0.8
    # ... and within this time of the group's latest call.
    incident_window_minutes: int = 60
    # ... but such a group (and its incident) is never wider than this: no two of its calls further apart, so a
    # dense storm cannot chain a whole region into one incident.
    incident_max_diameter_km: float = 2.4
    # A transformer is predicted out once this many of its customers call (one call is that customer's service).
    transformer_min_calls: int = 2
    # An upstream device (fuse/section/feeder) is predicted out once this many of its children are involved
    # (a transformer with a call, or a device below predicted out).
    upstream_min_children: int = 2
    # An incident is CONFIRMED (not just SUSPECTED) once it has this many calls (or a crew is on site).
    confirm_calls: int = 3
    # ---- duplicates: the same customer (account or phone) or the same site within the window
    duplicate_window_hours: float = 24.0
    duplicate_site_m: float = 15.0
    # ---- ETA / ETR
    # Re-publish a changed ETA or ETR only when it moved by more than this.
    publish_margin_minutes: int = 15
    # Repair time estimated from resolved tickets of the kind once this many exist (else the commitments).
    repair_history_min: int = 5
    repair_history_size: int = 200
    # ---- notifications
    local_utc_offset_hours: float = 8.0  # China Standard Time: quiet hours and times in messages are local
    quiet_hours: str = "22:00-07:00"  # default for customers without their own; "" for none
    max_attempts: int = 8
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    delivery_batch: int = 500
    webhook_url: str | None = None
    webhook_secret: str = "dev-webhook-secret"
    webhook_timeout_seconds: float = 5.0
    # messages per webhook POST (the gateway takes a JSON list)
    webhook_batch: int = 100
    templates_file: str | None = None
    # ---- planned outages
    planned_notice_days: float = 7.0
    # ---- public outage map and tracking
    map_cell_degrees: float = 0.01  # about 1 km
    map_cache_seconds: float = 30.0
    track_failures_per_ticket: int = 5  # wrong digits for one number, per window
    track_failures_per_client: int = 20  # misses from one client, per window
    track_window_minutes: int = 60


@lru_cache
def get_customer_settings() -> CustomerSettings:
    return CustomerSettings()
