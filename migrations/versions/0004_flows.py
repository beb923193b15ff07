"""Flows and their immutable versions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = r"""
-- A flow is a name in a project; a deleted flow is kept (runs will pin its versions) but
-- hidden, and its name can be used again.
CREATE TABLE flows (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE UNIQUE INDEX flows_live_name ON flows (project_id, name) WHERE deleted_at IS NULL;

-- Versions are immutable: a deploy adds one (numbered 1, 2, …), unless it is identical to
-- the latest.
CREATE TABLE flow_versions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow_id uuid NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    version integer NOT NULL CHECK (version >= 1),
    definition jsonb NOT NULL,
    content_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (flow_id, version)
);
"""

DOWNGRADE = r"""
DROP TABLE flow_versions;
DROP TABLE flows;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
