"""First start: without an admin key and without projects, create one project and key.

The key is printed once, to the terminal that started Sluice (never logged); it is the only
way in until an admin key is configured. A named lock makes concurrent starts create one.
"""

from __future__ import annotations

import sys
from typing import TextIO

from psycopg import AsyncConnection

from app import projects
from app.locks import lock

DEFAULT_PROJECT = "default"


async def ensure_first_project(url: str, out: TextIO = sys.stderr) -> bool:
    """Create the default project and its key if there is no project; True if created."""
    async with (
        await AsyncConnection.connect(url, autocommit=True) as conn,
        lock(conn, "bootstrap", timeout=30),
    ):
        if await projects.count_projects(conn) > 0:
            return False
        async with conn.transaction():
            project = await projects.create_project(conn, DEFAULT_PROJECT)
            _record, key = await projects.create_api_key(conn, project.id, "first key")
    print(
        f"sluice: created project {DEFAULT_PROJECT!r} (id {project.id}). Its API key, shown "
        f"only this once:\n\n    {key}\n\nSet SLUICE_ADMIN_API_KEY to create more projects "
        "and keys.",
        file=out,
        flush=True,
    )
    return True
