"""Retry and replay: a replay's link to its original, the bulk retry that requeued a run, and
each run's attempts (for its active time).

* ``flow_runs.replay_of``: the finished run this run replays (same trigger, or an edited
  body); NULL for every other run. A deleted original leaves its replays unlinked.
* ``flow_runs.retry_batch``: the bulk retry (``POST /api/v1/runs/retry``) that last queued
  the run again. A batch passes over runs it has marked, so it retries each run at most once
  even when its job runs again after a crash.
* ``run_attempts``: one row per attempt of a run — from the execution that first turns it
  RUNNING (after its creation, or after a retry queued it again) to its end. Rows are kept by
  the ``flow_runs_attempts`` trigger alone, so every way a run starts or ends (a worker, a
  cancel, the maintenance pass's timeout, a dead job) closes its attempt. A pause inside an
  attempt belongs to it; a run retried opens a new one when it runs again. A run's active
  time is the sum of its attempts' spans, not created → finished.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = r"""
ALTER TABLE flow_runs
    ADD COLUMN replay_of uuid REFERENCES flow_runs (id) ON DELETE SET NULL,
    ADD COLUMN retry_batch uuid;
CREATE INDEX flow_runs_replay_of ON flow_runs (replay_of) WHERE replay_of IS NOT NULL;

CREATE TABLE run_attempts (
    run_id uuid NOT NULL REFERENCES flow_runs (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt >= 1),
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    PRIMARY KEY (run_id, attempt)
);

INSERT INTO run_attempts (run_id, attempt, started_at, finished_at)
SELECT id, 1, started_at, finished_at FROM flow_runs WHERE started_at IS NOT NULL;

CREATE FUNCTION sluice_run_attempt() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'RUNNING' AND NOT EXISTS (
        SELECT FROM run_attempts WHERE run_id = NEW.id AND finished_at IS NULL
    ) THEN
        INSERT INTO run_attempts (run_id, attempt, started_at)
        SELECT NEW.id, coalesce(max(attempt), 0) + 1, now()
        FROM run_attempts WHERE run_id = NEW.id;
    ELSIF sluice_run_is_final(NEW.status) THEN
        UPDATE run_attempts SET finished_at = greatest(NEW.finished_at, started_at)
        WHERE run_id = NEW.id AND finished_at IS NULL;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER flow_runs_attempts AFTER UPDATE OF status ON flow_runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION sluice_run_attempt();
"""

DOWNGRADE = r"""
DROP TRIGGER flow_runs_attempts ON flow_runs;
DROP FUNCTION sluice_run_attempt();
DROP TABLE run_attempts;
DROP INDEX flow_runs_replay_of;
ALTER TABLE flow_runs DROP COLUMN retry_batch, DROP COLUMN replay_of;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
