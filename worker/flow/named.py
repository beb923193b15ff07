"""Loads the secrets and vars a run's flow names, once per execution, and only for a flow
that names any (the hot path reads nothing more).

A secret the project lacks is left out (its template fails as undefined); keys that are
missing or wrong make every step that needs a secret fail with the reason.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from app.secrets import keys, masking, store
from app.secrets.references import References
from app.settings import Settings
from worker.flow.context import NOTHING_NAMED, Named


async def load(
    pool: AsyncConnectionPool[Any], settings: Settings, project_id: int, names: References
) -> Named:
    if not names.any:
        return NOTHING_NAMED
    async with pool.connection() as conn:
        variables = await store.var_values(conn, project_id, None if names.all_vars else names.vars)
        if not names.secrets:
            return Named(vars=variables)
        try:
            ring = keys.keyring(settings)
            secrets = await store.secret_values(conn, ring, project_id, names.secrets)
        except (keys.SecretsUnavailable, keys.UnknownKey) as exc:
            return Named(vars=variables, unavailable=str(exc))
    masking.remember(secrets.values())
    return Named(secrets, variables)
