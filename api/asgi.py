"""The ASGI entry point (`api.asgi:app`) that uvicorn workers import."""

from api.app import create_app

app = create_app()
