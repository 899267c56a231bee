"""Bearer tokens: signed, expiring, revocable (a lost device, a leaked token), and never signed with the
development secret in production. gridcrew keeps no passwords (checked below), so nothing needs argon2."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import ValidationError
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.auth import Role, issue_token, principal_from_token
from api.revocation import Revocations, revoke
from core.settings import DEFAULT_SECRET, Settings
from crews.roster import NewCrew, create_crew
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
ME = "{ me { role crewId deviceId } }"
PULL = "query($d: ID!) { syncPull(deviceId: $d) { cursor } }"
REGISTER = """mutation($input: RegisterDeviceInput!) {
  registerDevice(input: $input) { device { id } token errors { message code } } }"""
REVOKE = """mutation($input: RevokeTokenInput!) {
  revokeToken(input: $input) { revoked errors { field message code } } }"""


def post(api: Api, query: str, token: str | None, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers).json()


def staff_only_error(api: Api, token: str) -> dict[str, Any]:
    return post(api, "{ tickets(first: 1) { totalCount } }", token)["errors"][0]


def register(api: Api, crew_id: int, device: str) -> str:
    payload = api(REGISTER, {"input": {"deviceId": device, "crewId": str(crew_id)}})["data"]["registerDevice"]
    assert payload["errors"] == []
    return payload["token"]


@pytest.fixture
def crew_id(session: Session) -> int:
    return create_crew(session, NewCrew(name="Crew 7", skills=["lv_overhead"], home_lat=30.6, home_lng=114.3)).id or 0


def test_a_valid_token_says_who_you_are(api: Api) -> None:
    token = issue_token(Role.CREW, crew_id=7, device_id="tablet-7", settings=api.settings)
    assert post(api, ME, token)["data"]["me"] == {"role": "CREW", "crewId": "7", "deviceId": "tablet-7"}
    claims = jwt.decode(token, api.settings.secret_key, algorithms=["HS256"])
    assert claims["exp"] > claims["iat"] and len(claims["jti"]) == 32


def test_a_token_signed_with_another_secret_is_refused(api: Api) -> None:
    forged = issue_token(Role.ADMIN, settings=Settings(gridcrew_env="test", secret_key="someone-else" * 4))
    error = staff_only_error(api, forged)
    assert error["extensions"]["code"] == "UNAUTHENTICATED" and "invalid token" in error["message"]


def test_a_token_with_an_edited_payload_or_no_signature_is_refused(api: Api) -> None:
    token = issue_token(Role.CREW, crew_id=7, settings=api.settings)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "ADMIN"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    unsigned = jwt.encode(claims, key="", algorithm="none")
    for bad in (f"{header}.{edited}.{signature}", unsigned, "not-a-token"):
        assert staff_only_error(api, bad)["extensions"]["code"] == "UNAUTHENTICATED"
        assert post(api, ME, bad)["data"]["me"]["role"] == "PUBLIC"


def test_an_expired_token_is_refused_with_the_reason(api: Api) -> None:
    expired = issue_token(Role.DISPATCHER, ttl=timedelta(seconds=-1), settings=api.settings)
    error = staff_only_error(api, expired)
    assert error["extensions"]["code"] == "UNAUTHENTICATED" and "token expired" in error["message"]


def test_a_token_used_before_expires_all_the_same(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue_token(Role.DISPATCHER, ttl=timedelta(minutes=5), settings=settings)
    assert principal_from_token(token, settings).role == Role.DISPATCHER  # its signature is checked once, and kept
    later = time.time() + 301
    monkeypatch.setattr(time, "time", lambda: later)
    expired = principal_from_token(token, settings)
    assert expired.role == Role.PUBLIC and expired.token_error == "token expired"


def test_tokens_expire_after_the_configured_lifetime(settings: Settings) -> None:
    token = issue_token(Role.DISPATCHER, settings=settings.model_copy(update={"token_ttl_hours": 2.0}))
    claims = jwt.decode(token, settings.secret_key, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == pytest.approx(2 * 3600, abs=1)


def test_a_lost_device_is_revoked_and_registering_it_again_gives_a_working_token(api: Api, crew_id: int) -> None:
    token = register(api, crew_id, "tablet-lost")
    assert "errors" not in post(api, PULL, token, {"d": "tablet-lost"})
    other = register(api, crew_id, "tablet-kept")

    answer = api(REVOKE, {"input": {"deviceId": "tablet-lost", "reason": "left in a taxi"}})["data"]["revokeToken"]
    assert answer == {"revoked": 1, "errors": []}

    refused = post(api, PULL, token, {"d": "tablet-lost"})["errors"][0]
    assert refused["extensions"]["code"] == "UNAUTHENTICATED" and "token revoked" in refused["message"]
    assert post(api, ME, token)["data"]["me"]["role"] == "PUBLIC"
    assert "errors" not in post(api, PULL, other, {"d": "tablet-kept"})  # the crew's other device goes on

    found_again = register(api, crew_id, "tablet-lost")
    assert "errors" not in post(api, PULL, found_again, {"d": "tablet-lost"})


def test_one_leaked_token_is_revoked_by_its_id(api: Api) -> None:
    leaked = issue_token(Role.DISPATCHER, settings=api.settings)
    kept = issue_token(Role.DISPATCHER, settings=api.settings)
    token_id = jwt.decode(leaked, api.settings.secret_key, algorithms=["HS256"])["jti"]
    assert api(REVOKE, {"input": {"tokenId": token_id}})["data"]["revokeToken"]["revoked"] == 1
    assert staff_only_error(api, leaked)["message"].endswith("(token revoked)")
    assert "errors" not in post(api, "{ tickets(first: 1) { totalCount } }", kept)


def test_revoking_nothing_is_a_user_error(api: Api) -> None:
    answer = api(REVOKE, {"input": {"reason": "?"}})["data"]["revokeToken"]
    assert answer["revoked"] is None and answer["errors"][0]["code"] == "INVALID"


def test_a_revocation_reaches_other_worker_processes_at_their_next_refresh(db: Engine) -> None:
    clock = [100.0]
    other_worker = Revocations(db, refresh_seconds=5.0, monotonic=lambda: clock[0])
    token = issue_token(Role.CREW, crew_id=1, device_id="tablet-9", settings=Settings(gridcrew_env="test"))
    issued_at = jwt.decode(token, options={"verify_signature": False})["iat"]
    assert not other_worker.is_revoked(None, "tablet-9", issued_at)
    with Session(db) as session:
        revoke(session, device_id="tablet-9")
    assert not other_worker.is_revoked(None, "tablet-9", issued_at)  # within its refresh interval
    clock[0] += 5.0
    assert other_worker.is_revoked(None, "tablet-9", issued_at)


def test_production_refuses_the_development_secret_or_a_short_one() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set in production"):
        Settings(gridcrew_env="production", secret_key=DEFAULT_SECRET)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(gridcrew_env="production", secret_key="short")
    assert Settings(gridcrew_env="production", secret_key="k" * 40).production


def test_the_server_refuses_to_start_in_production_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "GRIDCREW_ENV"}}
    env.update(GRIDCREW_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite'}")
    result = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--no-migrate", "--port", "1"], cwd=tmp_path,
                            env=env | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stdout + result.stderr
    assert "gridcrew API on" not in result.stdout


def test_gridcrew_keeps_no_passwords_so_there_is_nothing_to_hash(db: Engine) -> None:
    inspector = inspect(db)
    columns = [f"{table}.{c['name']}" for table in inspector.get_table_names() for c in inspector.get_columns(table)]
    assert len(columns) > 50
    assert [c for c in columns if any(word in c.lower() for word in ("password", "passwd", "pwd"))] == []


def test_a_revoked_device_can_not_open_a_subscription_either(api: Api, crew_id: int) -> None:
    token = register(api, crew_id, "tablet-stolen")
    api(REVOKE, {"input": {"deviceId": "tablet-stolen"}})
    query = "subscription($c: ID!) { crewJobs(crewId: $c) { cursor } }"
    with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"c": str(crew_id)}}})
        message = ws.receive_json()
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "token revoked" in message["payload"][0]["message"]
