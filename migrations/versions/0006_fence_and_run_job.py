"""The lease fence and a run's job, each defined once.

* ``sluice_lease_held(job, owner, attempt)``: the fence. Every write by a job's holder
  (heartbeat, completion, retry, release, and the run store's one-statement commits) tests
  it in the statement's own ``WHERE`` on ``jobs``, so a write racing a rescue re-checks the
  row version it finally locks. It is an inlinable SQL function: the planner expands it into
  the three column tests, so the statements keep their plans.
* ``sluice_continue_run(run, at)``: the shape of a run's ``execute_run`` job. It is the only
  place that creates one: a new run (the ``flow_runs_created`` trigger), a resume, a child's
  end, a retry, a reschedule after a step's backoff. The job's attempts come from the run
  (``flow_runs.job_max_attempts``, set from ``SLUICE_JOB_MAX_ATTEMPTS`` when the run is
  created), so a resumed run keeps the configured attempts.
* ``sluice_live_flows``: the latest version of each live flow, which webhooks and call_flow
  steps start.
* Triggers take their time from the row that fired them (``finished_at``, ``died_at``), so
  statements given an injected ``now`` stay consistent through them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = r"""
CREATE FUNCTION sluice_lease_held(p_job jobs, p_owner text, p_attempt integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN p_job.state = 'running' AND p_job.lease_owner = p_owner AND p_job.attempt = p_attempt;

-- Existing runs keep the attempts their jobs had so far (the column default of jobs).
ALTER TABLE flow_runs
    ADD COLUMN job_max_attempts integer NOT NULL DEFAULT 5 CHECK (job_max_attempts >= 1);

-- The latest version of every live flow: what a webhook or a call_flow step starts.
CREATE VIEW sluice_live_flows AS
SELECT f.id AS flow_id, f.project_id, f.name, f.enabled, v.id AS version_id, v.version,
       v.definition -> 'trigger' ->> 'secret' AS secret
FROM flows f
JOIN LATERAL (
    SELECT id, version, definition FROM flow_versions
    WHERE flow_id = f.id ORDER BY version DESC LIMIT 1
) v ON true
WHERE f.deleted_at IS NULL;

DROP FUNCTION sluice_continue_run(uuid);

-- Schedule run p_run's execution at p_at: enqueue its execute_run job, or bring its queued
-- one forward. A run has at most one live job (idempotency key run:<id>); a running one
-- finds whatever was completed when it gets there. Nothing for a final run.
CREATE FUNCTION sluice_continue_run(p_run uuid, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobs (kind, project_id, run_id, payload, run_at, max_attempts, idempotency_key)
    SELECT 'execute_run', r.project_id, r.id, jsonb_build_object('run_id', r.id),
           coalesce(p_at, now()), r.job_max_attempts, 'run:' || r.id
    FROM flow_runs r
    WHERE r.id = p_run AND NOT sluice_run_is_final(r.status)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL
    DO UPDATE SET run_at = least(jobs.run_at, EXCLUDED.run_at)
    WHERE jobs.state = 'queued';
END
$$;

-- Invariant: a run is created together with its first job, whoever inserts it.
CREATE FUNCTION sluice_run_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sluice_continue_run(NEW.id, NEW.created_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER flow_runs_created
AFTER INSERT ON flow_runs
FOR EACH ROW EXECUTE FUNCTION sluice_run_created();

-- Invariant: whatever makes a run final (its last step, a cancel, a timeout, its job
-- dying), the same things follow, in the same transaction: its live children end the same
-- way (cancel and timeout), its pending waitpoints and queued jobs go, and a parent waiting
-- on it is resumed. Locks are taken in the order every other writer uses — run rows
-- (parent, then children), then waitpoints, then jobs — so a cancel racing a child's end,
-- a resume or a pause waits for it instead of deadlocking.
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

-- A run's job that exhausted its attempts (its worker kept dying, or the job kept failing
-- for reasons outside the flow) fails the run, so no run stays live without a job.
CREATE OR REPLACE FUNCTION sluice_run_job_died() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.run_id IS NOT NULL AND NEW.kind = 'execute_run' THEN
        UPDATE flow_runs
        SET status = 'FAILED',
            error = 'the run could not be executed: ' || NEW.last_error,
            finished_at = NEW.died_at
        WHERE id = NEW.run_id AND NOT sluice_run_is_final(status);
    END IF;
    RETURN NULL;
END
$$;
"""

DOWNGRADE = r"""
CREATE OR REPLACE FUNCTION sluice_run_job_died() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.run_id IS NOT NULL AND NEW.kind = 'execute_run' THEN
        UPDATE flow_runs
        SET status = 'FAILED',
            error = 'the run could not be executed: ' || NEW.last_error,
            finished_at = now()
        WHERE id = NEW.run_id AND NOT sluice_run_is_final(status);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER flow_runs_created ON flow_runs;
DROP FUNCTION sluice_run_created();

CREATE FUNCTION sluice_continue_run(p_run uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO jobs (kind, project_id, run_id, payload, idempotency_key)
    SELECT 'execute_run', r.project_id, r.id, jsonb_build_object('run_id', r.id),
           'run:' || r.id
    FROM flow_runs r
    WHERE r.id = p_run AND NOT sluice_run_is_final(r.status)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL
    DO UPDATE SET run_at = least(jobs.run_at, now())
    WHERE jobs.state = 'queued'
$$;

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
            completed_at = now(),
            payload = jsonb_build_object(
                'run_id', NEW.id, 'status', NEW.status, 'output', NEW.output,
                'response', NEW.response, 'error', NEW.error)
        WHERE run_id = NEW.parent_run_id AND step_key = NEW.parent_step_key
          AND state = 'pending';
        IF FOUND THEN
            PERFORM sluice_continue_run(NEW.parent_run_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

DROP FUNCTION sluice_continue_run(uuid, timestamptz);
DROP VIEW sluice_live_flows;
ALTER TABLE flow_runs DROP COLUMN job_max_attempts;
DROP FUNCTION sluice_lease_held(jobs, text, integer);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
