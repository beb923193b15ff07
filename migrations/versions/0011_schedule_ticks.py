"""Schedule ticks: each tick of a flow's schedule is fired once.

A tick is keyed by its flow, its schedule's rule (``cron 0 9 * * * Europe/Paris``,
``every 300s``) and its time; the maintenance leader inserts it in the same statement as
the run it starts, so however many passes race for one tick (two leaders across a change,
a retried pass), the primary key lets one insert through and the others start nothing. A
tick that was due but started no run (its schedule's previous run is still live, or the
project was at its cap of live runs) is recorded too, so it is not tried again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = r"""
CREATE TABLE schedule_ticks (
    flow_id uuid NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    rule text NOT NULL CHECK (rule <> ''),
    tick_at timestamptz NOT NULL,
    run_id uuid REFERENCES flow_runs (id) ON DELETE SET NULL,
    outcome text NOT NULL CHECK (outcome IN ('run', 'overlap', 'cap')),
    fired_at timestamptz NOT NULL,
    PRIMARY KEY (flow_id, rule, tick_at)
);
CREATE INDEX schedule_ticks_run ON schedule_ticks (run_id) WHERE run_id IS NOT NULL;
"""

DOWNGRADE = r"""
DROP TABLE schedule_ticks;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
