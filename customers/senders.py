"""Senders of notifications behind one interface: a log sender (the demo default) and a webhook sender that
POSTs a signed JSON body to an operator's SMS / WeChat / push / email gateway."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Protocol

import httpx

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Gridcrew-Signature"


@dataclass(frozen=True)
class Message:
    """What a sender gets: `id` is stable across retries, so a gateway can drop a repeat it already took."""

    id: str
    channel: str
    recipient: str
    body: str
    kind: str
    language: str


class Sender(Protocol):
    def send(self, messages: list[Message]) -> dict[str, str | None]:
        """Send a batch; for every message id, None when accepted or a short reason when not (retried later)."""
        ...


class LogSender:
    """Writes messages to the log (and keeps them, for tests and the demo)."""

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.sent: list[Message] = []

    def send(self, messages: list[Message]) -> dict[str, str | None]:
        for message in messages:
            log.info("notify %s %s via %s: %s", message.kind, message.recipient, message.channel, message.body)
        if self.keep:
            self.sent.extend(messages)
        return {m.id: None for m in messages}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(sign(secret, body), signature)


class WebhookSender:
    """POSTs `{"messages": [...]}` (up to `batch` per request) signed with HMAC-SHA256 over the raw body.

    A 2xx answer accepts the whole request; anything else, a timeout or a connection error fails it and the
    dispatcher retries it with backoff. Each message carries its stable id for the gateway to deduplicate.
    """

    def __init__(self, url: str, secret: str, timeout: float = 5.0, batch: int = 100,
                 client: httpx.Client | None = None) -> None:
        self.url, self.secret, self.batch = url, secret, max(1, batch)
        self.client = client or httpx.Client(timeout=timeout)

    def send(self, messages: list[Message]) -> dict[str, str | None]:
        outcome: dict[str, str | None] = {}
        for start in range(0, len(messages), self.batch):
            chunk = messages[start:start + self.batch]
            body = json.dumps({"messages": [m.__dict__ for m in chunk]}, ensure_ascii=False,
                              separators=(",", ":")).encode()
            try:
                response = self.client.post(self.url, content=body, headers={
                    "Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)})
                error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
            outcome.update({m.id: error for m in chunk})
        return outcome

    def close(self) -> None:
        self.client.close()
