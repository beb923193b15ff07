"""Worker registry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = r"""
-- One row per worker process start; last_seen is refreshed with every lease heartbeat.
CREATE TABLE workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    container_type text NOT NULL,
    slots integer NOT NULL CHECK (slots >= 1),
    version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
CREATE INDEX workers_last_seen ON workers (last_seen);
"""

DOWNGRADE = r"""
DROP TABLE workers;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
