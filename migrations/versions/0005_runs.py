"""Runs: flow runs, step runs, waitpoints, and what every terminal transition implies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = r"""
CREATE FUNCTION sluice_run_is_final(p_status text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_status NOT IN ('QUEUED', 'RUNNING', 'PAUSED')
$$;

CREATE TABLE flow_runs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    flow_id uuid NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    flow_version_id bigint NOT NULL REFERENCES flow_versions (id) ON DELETE CASCADE,
    version integer NOT NULL,
    status text NOT NULL DEFAULT 'QUEUED' CHECK (status IN (
        'QUEUED', 'RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'TIMEOUT', 'CANCELED',
        'MEMORY_LIMIT_EXCEEDED', 'LOG_SIZE_EXCEEDED', 'INTERNAL_ERROR'
    )),
    trigger jsonb NOT NULL,
    output jsonb,
    -- What a respond step set: {"status", "headers", "body"}; answers sync callers.
    response jsonb,
    error text,
    parent_run_id uuid REFERENCES flow_runs (id) ON DELETE SET NULL,
    -- The parent's call_flow step waiting for this run (NULL: nobody waits).
    parent_step_key text,
    -- Resume tokens are HMACs of a step key under this per-run secret (32 random bytes
    -- from the app); it is never served.
    resume_secret bytea NOT NULL CHECK (length(resume_secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    -- The run timeout counts active time: while paused, the budget left is kept in
    -- timeout_remaining_seconds and deadline_at is NULL.
    deadline_at timestamptz,
    timeout_remaining_seconds double precision,
    paused_at timestamptz,
    -- Paused runs waiting on something without a known time expire here (the paused TTL).
    pause_expires_at timestamptz,
    CONSTRAINT flow_runs_final_has_finish CHECK (
        sluice_run_is_final(status) = (finished_at IS NOT NULL)
    )
);
CREATE INDEX flow_runs_listing ON flow_runs (project_id, created_at DESC, id DESC);
CREATE INDEX flow_runs_by_flow ON flow_runs (flow_id, created_at DESC, id DESC);
CREATE INDEX flow_runs_children ON flow_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX flow_runs_live ON flow_runs (status) WHERE status IN ('QUEUED', 'RUNNING', 'PAUSED');
CREATE INDEX flow_runs_deadline ON flow_runs (deadline_at)
    WHERE status IN ('QUEUED', 'RUNNING');
CREATE INDEX flow_runs_pause_expiry ON flow_runs (pause_expires_at) WHERE status = 'PAUSED';

-- One row per executed step instance; `key` is unique within the run: the step id, inside
-- loops prefixed by the iterations (`each[2].notify`).
CREATE TABLE step_runs (
    id bigint GENERATED ALWAYS AS IDENTITY,
    run_id uuid NOT NULL REFERENCES flow_runs (id) ON DELETE CASCADE,
    key text NOT NULL,
    step_id text NOT NULL,
    type text NOT NULL,
    status text NOT NULL CHECK (status IN (
        'SUCCEEDED', 'FAILED', 'PAUSED', 'RETRYING', 'TIMEOUT', 'CANCELED',
        'MEMORY_LIMIT_EXCEEDED', 'LOG_SIZE_EXCEEDED', 'INTERNAL_ERROR'
    )),
    attempts integer NOT NULL DEFAULT 1,
    output jsonb,
    error text,
    stdout text,
    stderr text,
    started_at timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (run_id, key)
);

-- Record step results given as a JSON array of step_runs rows; a step recorded again (a
-- retry, a resumed pause) updates its row and keeps its first start.
CREATE FUNCTION sluice_record_steps(p_run uuid, p_steps jsonb) RETURNS integer
LANGUAGE sql AS $$
    WITH written AS (
        INSERT INTO step_runs (
            run_id, key, step_id, type, status, attempts, output, error, stdout, stderr,
            started_at, finished_at
        )
        SELECT p_run, s.key, s.step_id, s.type, s.status, s.attempts, s.output, s.error,
               s.stdout, s.stderr, s.started_at, s.finished_at
        FROM jsonb_to_recordset(p_steps) AS s (
            key text, step_id text, type text, status text, attempts integer, output jsonb,
            error text, stdout text, stderr text, started_at timestamptz,
            finished_at timestamptz
        )
        ON CONFLICT (run_id, key) DO UPDATE
        SET status = EXCLUDED.status, attempts = EXCLUDED.attempts, output = EXCLUDED.output,
            error = EXCLUDED.error, stdout = EXCLUDED.stdout, stderr = EXCLUDED.stderr,
            started_at = coalesce(step_runs.started_at, EXCLUDED.started_at),
            finished_at = EXCLUDED.finished_at
        RETURNING 1
    )
    SELECT count(*)::integer FROM written
$$;

-- A pause: a delay, a wait for a resume webhook, or a wait for a child run. Completing a
-- waitpoint and pausing on it lock the same row, so neither order loses the resume.
CREATE TABLE waitpoints (
    run_id uuid NOT NULL REFERENCES flow_runs (id) ON DELETE CASCADE,
    step_key text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('delay', 'webhook', 'subflow')),
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'completed')),
    resume_at timestamptz,
    child_run_id uuid,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (run_id, step_key)
);
CREATE INDEX waitpoints_child ON waitpoints (child_run_id) WHERE child_run_id IS NOT NULL;

-- Schedule a run's execution now: enqueue its execute_run job, or bring a queued one
-- forward. A run has at most one live job (idempotency key run:<id>); a running one will
-- find whatever was completed when it reaches it.
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

-- Invariant: whatever makes a run final (its last step, a cancel, a timeout, its job
-- dying), the same things follow, in the same transaction: its live children end the same
-- way (cancel and timeout), its pending waitpoints and queued jobs go, and a parent waiting
-- on it is resumed. Locks are taken in the order every other writer uses — run rows
-- (parent, then children), then waitpoints, then jobs — so a cancel racing a child's end,
-- a resume or a pause waits for it instead of deadlocking.
CREATE FUNCTION sluice_run_finished() RETURNS trigger
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

CREATE TRIGGER flow_runs_finished
AFTER UPDATE OF status ON flow_runs
FOR EACH ROW
WHEN (sluice_run_is_final(NEW.status) AND NOT sluice_run_is_final(OLD.status))
EXECUTE FUNCTION sluice_run_finished();

-- A run's job that exhausted its attempts (its worker kept dying, or the job kept failing
-- for reasons outside the flow) fails the run, so no run stays live without a job.
CREATE FUNCTION sluice_run_job_died() RETURNS trigger
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

CREATE TRIGGER dead_jobs_fail_run
AFTER INSERT ON dead_jobs
FOR EACH ROW EXECUTE FUNCTION sluice_run_job_died();
"""

DOWNGRADE = r"""
DROP TRIGGER dead_jobs_fail_run ON dead_jobs;
DROP FUNCTION sluice_run_job_died();
DROP TABLE waitpoints;
DROP FUNCTION sluice_record_steps(uuid, jsonb);
DROP TABLE step_runs;
DROP TABLE flow_runs;
DROP FUNCTION sluice_run_finished();
DROP FUNCTION sluice_continue_run(uuid);
DROP FUNCTION sluice_run_is_final(text);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
