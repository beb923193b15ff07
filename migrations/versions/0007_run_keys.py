"""Idempotency keys of webhook requests: a retried request finds the run its first made.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = r"""
-- A webhook request's Idempotency-Key, per flow, and the run it started. A key is taken by
-- the statement that inserts the run, so two requests with the same key (also racing) make
-- one run. A key older than the window (SLUICE_IDEMPOTENCY_WINDOW_SECONDS) counts as free,
-- and the maintenance pass deletes such keys.
CREATE TABLE run_keys (
    flow_id uuid NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    key text NOT NULL CHECK (key <> ''),
    run_id uuid NOT NULL REFERENCES flow_runs (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow_id, key)
);
CREATE INDEX run_keys_created_at ON run_keys (created_at);
CREATE INDEX run_keys_run ON run_keys (run_id);
"""

DOWNGRADE = r"""
DROP TABLE run_keys;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
