"""Runs know how deep they are called, projects how many runs are live, and a run's end
reaches its descendants in one statement, whatever the depth.

* ``flow_runs.depth``: 0 for a run a webhook (or a retry) started, its caller's depth + 1
  for a sub-flow's run; the engine refuses a call deeper than SLUICE_MAX_CALL_DEPTH.
* ``flow_runs_live_by_project``: what the cap on a project's live runs counts.
* ``sluice_run_finished``: a cancel or a timeout ends every live descendant with one
  recursive statement. Before, each generation's update fired the next one's trigger, so a
  chain a few hundred deep exceeded the stack ("stack depth limit exceeded"): now the
  triggers it fires find no live child left and go no deeper.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_FINISHED = r"""
CREATE OR REPLACE FUNCTION sluice_run_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('CANCELED', 'TIMEOUT') THEN
        WITH RECURSIVE below AS (
            SELECT id, parent_run_id FROM flow_runs
            WHERE parent_run_id = NEW.id AND NOT sluice_run_is_final(status)
            UNION ALL
            SELECT r.id, r.parent_run_id FROM flow_runs r JOIN below ON r.parent_run_id = below.id
            WHERE NOT sluice_run_is_final(r.status)
        )
        UPDATE flow_runs r
        SET status = NEW.status,
            error = coalesce(r.error, CASE WHEN below.parent_run_id = NEW.id
                THEN 'parent run ' || NEW.id || ' ended: ' || NEW.status
                ELSE 'ancestor run ' || NEW.id || ' ended: ' || NEW.status END),
            finished_at = NEW.finished_at
        FROM below
        WHERE r.id = below.id AND NOT sluice_run_is_final(r.status);
    END IF;
    DELETE FROM waitpoints WHERE run_id = NEW.id AND state = 'pending';
    DELETE FROM jobs WHERE run_id = NEW.id AND state = 'queued';
    IF NEW.parent_run_id IS NOT NULL AND NEW.parent_step_key IS NOT NULL THEN
        UPDATE waitpoints
        SET state = 'completed',
            completed_at = NEW.finished_at,
            payload = jsonb_build_object(
                'run_id', NEW.id, 'status', NEW.status, 'output', NEW.output,
                'response', NEW.response, 'error', NEW.error)
        WHERE run_id = NEW.parent_run_id AND step_key = NEW.parent_step_key
          AND state = 'pending';
        IF FOUND THEN
            PERFORM sluice_continue_run(NEW.parent_run_id, NEW.finished_at);
        END IF;
    END IF;
    RETURN NULL;
END
$$;
"""

UPGRADE = (
    r"""
ALTER TABLE flow_runs ADD COLUMN depth integer NOT NULL DEFAULT 0 CHECK (depth >= 0);
CREATE INDEX flow_runs_live_by_project ON flow_runs (project_id)
    WHERE status IN ('QUEUED', 'RUNNING', 'PAUSED');

-- Invariant: whatever makes a run final (its last step, a cancel, a timeout, its job
-- dying), the same things follow, in the same transaction: its live descendants end the
-- same way (cancel and timeout), its pending waitpoints and queued jobs go, and a parent
-- waiting on it is resumed. Locks are taken in the order every other writer uses — run
-- rows (the run, then its descendants), then waitpoints, then jobs.
"""
    + _FINISHED
)

DOWNGRADE = r"""
CREATE OR REPLACE FUNCTION sluice_run_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('CANCELED', 'TIMEOUT') THEN
        UPDATE flow_runs
        SET status = NEW.status,
            error = coalesce(error, 'parent run ' || NEW.id || ' ended: ' || NEW.status),
            finished_at = NEW.finished_at
        WHERE parent_run_id = NEW.id AND NOT sluice_run_is_final(status);
    END IF;
    DELETE FROM waitpoints WHERE run_id = NEW.id AND state = 'pending';
    DELETE FROM jobs WHERE run_id = NEW.id AND state = 'queued';
    IF NEW.parent_run_id IS NOT NULL AND NEW.parent_step_key IS NOT NULL THEN
        UPDATE waitpoints
        SET state = 'completed',
            completed_at = NEW.finished_at,
            payload = jsonb_build_object(
                'run_id', NEW.id, 'status', NEW.status, 'output', NEW.output,
                'response', NEW.response, 'error', NEW.error)
        WHERE run_id = NEW.parent_run_id AND step_key = NEW.parent_step_key
          AND state = 'pending';
        IF FOUND THEN
            PERFORM sluice_continue_run(NEW.parent_run_id, NEW.finished_at);
        END IF;
    END IF;
    RETURN NULL;
END
$$;
DROP INDEX flow_runs_live_by_project;
ALTER TABLE flow_runs DROP COLUMN depth;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
