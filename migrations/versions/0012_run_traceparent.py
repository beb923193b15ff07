"""A run carries the W3C trace context it was started in, so the trace crosses the queue.

* ``flow_runs.traceparent``: the `traceparent` (W3C Trace Context) of the span that made
  the run — a webhook's enqueue, a parent's call_flow — when tracing is on; NULL otherwise.
  Each execution of the run (a worker's claim) continues that trace.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

# 55 characters in version 00; later versions may append fields, so the bound is loose.
UPGRADE = r"""
ALTER TABLE flow_runs ADD COLUMN traceparent text CHECK (length(traceparent) <= 512);
"""

DOWNGRADE = r"""
ALTER TABLE flow_runs DROP COLUMN traceparent;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
