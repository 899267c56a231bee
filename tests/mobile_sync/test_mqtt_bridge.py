"""The optional MQTT bridge: a crew's job changes are published to `gridcrew/crews/<crew id>/jobs`.

Runs against the Mosquitto broker on MQTT_URL (default mqtt://127.0.0.1:1883); skipped when no broker listens.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import socket
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy.engine import Engine

from mobile_sync.live import LiveUpdates

MQTT_URL = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883")
World = Any  # the `world` fixture of tests/mobile_sync/conftest.py


def broker_listening() -> bool:
    parsed = urlparse(MQTT_URL)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 1883), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not broker_listening(), reason="no MQTT broker on MQTT_URL")
def test_a_new_job_is_published_on_the_crews_topic(db: Engine, world: World) -> None:
    import paho.mqtt.client as mqtt

    west, _ = world.crew("West")
    topic = f"gridcrew/crews/{west.id}/jobs"
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    listener.on_message = lambda _c, _u, message: received.put(json.loads(message.payload))
    listener.on_subscribe = lambda *_args: subscribed.put(True)
    listener.on_connect = lambda client, *_args: client.subscribe(topic, qos=1)
    parsed = urlparse(MQTT_URL)
    listener.connect(parsed.hostname or "127.0.0.1", parsed.port or 1883)
    listener.loop_start()
    try:
        subscribed.get(timeout=10)

        async def scenario() -> None:
            live = LiveUpdates(db, mqtt_url=MQTT_URL, poll_seconds=0.1)
            await live.start()
            try:
                await asyncio.sleep(0.5)  # the bridge's own connection
                ticket = world.ticket(west)
                message = await asyncio.to_thread(received.get, True, 10)
                while message["ticketId"] != ticket.id:
                    message = await asyncio.to_thread(received.get, True, 10)
                assert message["seq"] > 0
            finally:
                await live.stop()

        asyncio.run(scenario())
    finally:
        listener.loop_stop()
        listener.disconnect()
