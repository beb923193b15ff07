"""The app under test: settings for a test database, and a TestClient through its lifespan."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr
from starlette.testclient import TestClient

from app.settings import Settings
from app.web import create_app
from tests.flows.stack import SECRETS_KEY

ADMIN = "admin-secret-for-tests"


def app_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": SecretStr(database_url),
        "admin_api_key": SecretStr(ADMIN),
        "pool_min_size": 1,
        "pool_max_size": 4,
        "secrets_key": SecretStr(SECRETS_KEY),
        **overrides,
    }
    return Settings(**values)


@contextmanager
def app_client(database_url: str, **overrides: Any) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings(database_url, **overrides))) as client:
        yield client
