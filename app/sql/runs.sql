-- name: find_webhook_flow
-- A live, enabled flow with its latest version: what a webhook starts a run of.
SELECT f.id AS flow_id, f.project_id, f.name, v.id AS version_id, v.version,
       v.definition -> 'trigger' ->> 'secret' AS secret
FROM flows f
JOIN LATERAL (
    SELECT id, version, definition FROM flow_versions
    WHERE flow_id = f.id ORDER BY version DESC LIMIT 1
) v ON true
WHERE f.id = %(flow_id)s AND f.enabled AND f.deleted_at IS NULL;

-- name: find_flow_by_name
-- A live, enabled flow of the project by name, with its latest version (call_flow).
SELECT f.id AS flow_id, f.project_id, f.name, v.id AS version_id, v.version,
       v.definition -> 'trigger' ->> 'secret' AS secret
FROM flows f
JOIN LATERAL (
    SELECT id, version, definition FROM flow_versions
    WHERE flow_id = f.id ORDER BY version DESC LIMIT 1
) v ON true
WHERE f.project_id = %(project_id)s AND f.name = %(name)s AND f.enabled
  AND f.deleted_at IS NULL;

-- name: start_webhook_run
-- A webhook's run and its job, in one statement, when the flow is live and enabled and
-- needs no signature. No row: unknown, disabled, or signed (then find_webhook_flow).
WITH flow AS (
    SELECT f.id AS flow_id, f.project_id, v.id AS version_id, v.version
    FROM flows f
    JOIN LATERAL (
        SELECT id, version, definition FROM flow_versions
        WHERE flow_id = f.id ORDER BY version DESC LIMIT 1
    ) v ON true
    WHERE f.id = %(flow_id)s AND f.enabled AND f.deleted_at IS NULL
      AND v.definition -> 'trigger' ->> 'secret' IS NULL
),
run AS (
    INSERT INTO flow_runs (
        id, project_id, flow_id, flow_version_id, version, trigger, resume_secret, deadline_at
    )
    SELECT %(run_id)s, project_id, flow_id, version_id, version, %(trigger)s, %(resume_secret)s,
           now() + make_interval(secs => %(timeout_seconds)s)
    FROM flow
    RETURNING id, project_id
),
job AS (
    -- The run's execute_run job, as app.flows.runs.execute_job builds it.
    INSERT INTO jobs (kind, project_id, run_id, payload, max_attempts, idempotency_key)
    SELECT 'execute_run', project_id, id, jsonb_build_object('run_id', id),
           %(max_attempts)s, 'run:' || id
    FROM run
)
SELECT id FROM run;

-- name: insert_run
-- A new run, QUEUED, its active-time budget counting from now.
INSERT INTO flow_runs (
    id, project_id, flow_id, flow_version_id, version, trigger, resume_secret,
    parent_run_id, parent_step_key, deadline_at
)
VALUES (
    %(run_id)s, %(project_id)s, %(flow_id)s, %(version_id)s, %(version)s, %(trigger)s, %(resume_secret)s,
    %(parent_run_id)s, %(parent_step_key)s, now() + make_interval(secs => %(timeout_seconds)s)
)
RETURNING id;

-- name: start_run
-- An execution begins: a live run turns RUNNING (resuming its timeout budget) and is loaded
-- with its flow, finished steps and waitpoints. No row: the run is final (or gone).
WITH run AS (
    UPDATE flow_runs
    SET status = 'RUNNING',
        started_at = coalesce(started_at, now()),
        deadline_at = coalesce(
            deadline_at, now() + make_interval(secs => coalesce(timeout_remaining_seconds, 0))
        ),
        timeout_remaining_seconds = NULL,
        paused_at = NULL,
        pause_expires_at = NULL
    WHERE id = %(run_id)s AND status IN ('QUEUED', 'RUNNING', 'PAUSED')
    RETURNING *
)
SELECT run.id, run.project_id, run.flow_id, f.name AS flow_name, run.flow_version_id,
       run.version, run.trigger, run.resume_secret, run.parent_run_id, run.deadline_at,
       clock_timestamp() AS db_now,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'key', s.key, 'status', s.status, 'attempts', s.attempts,
                   'output', s.output, 'error', s.error) ORDER BY s.id), '[]'::jsonb)
        FROM step_runs s WHERE s.run_id = run.id) AS steps,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'key', w.step_key, 'kind', w.kind, 'state', w.state,
                   'resume_at', w.resume_at, 'child_run_id', w.child_run_id,
                   'payload', w.payload)), '[]'::jsonb)
        FROM waitpoints w WHERE w.run_id = run.id) AS waitpoints
FROM run
JOIN flows f ON f.id = run.flow_id;

-- name: get_definition
-- A flow version's definition (immutable: cached by id).
SELECT definition FROM flow_versions WHERE id = %(version_id)s;

-- name: run_status
-- The run's status, as seen by an execution between steps (a cancel or timeout shows here).
SELECT status FROM flow_runs WHERE id = %(run_id)s;

-- name: lock_run
-- Lock the run row first in a pause: pause and cancel take run, waitpoint, job in order.
SELECT status FROM flow_runs WHERE id = %(run_id)s FOR UPDATE;

-- name: upsert_step_runs
-- Record step results (one row per step instance; a retried step updates its row).
SELECT sluice_record_steps(%(run_id)s, %(steps)s::jsonb);

-- name: save_progress
-- Between steps: renew the job's lease and, only if it is still ours, record step results
-- and the reply. Returns whether the lease held and the run's status (a cancel shows here).
-- The lease predicate is the queue's fence (app/sql/jobs.sql), in the same statement.
WITH held AS (
    UPDATE jobs
    SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
    WHERE id = %(job_id)s AND attempt = %(attempt)s AND lease_owner = %(owner)s
      AND state = 'running'
    RETURNING id
),
steps AS (
    SELECT sluice_record_steps(%(run_id)s, %(steps)s::jsonb) AS recorded FROM held
),
replied AS (
    UPDATE flow_runs r SET response = %(response)s
    FROM held
    WHERE r.id = %(run_id)s AND r.status = 'RUNNING' AND %(set_response)s
)
SELECT EXISTS (SELECT FROM held) AS held,
       (SELECT status FROM flow_runs WHERE id = %(run_id)s) AS status,
       (SELECT recorded FROM steps) AS recorded;

-- name: finish_execution
-- The run's last step is done: delete its job (only if the lease is still ours), record
-- the last results and the reply, and end the run if it is still RUNNING — one statement.
WITH held AS (
    DELETE FROM jobs
    WHERE id = %(job_id)s AND attempt = %(attempt)s AND lease_owner = %(owner)s
      AND state = 'running'
    RETURNING id
),
steps AS (
    SELECT sluice_record_steps(%(run_id)s, %(steps)s::jsonb) AS recorded FROM held
),
ended AS (
    UPDATE flow_runs r
    SET status = %(status)s, output = %(output)s, error = %(error)s, finished_at = now(),
        deadline_at = NULL,
        response = CASE WHEN %(set_response)s THEN %(response)s ELSE r.response END
    FROM held
    WHERE r.id = %(run_id)s AND r.status = 'RUNNING'
    RETURNING r.response
)
SELECT EXISTS (SELECT FROM held) AS held, EXISTS (SELECT FROM ended) AS ended,
       (SELECT response FROM ended) AS response, (SELECT recorded FROM steps) AS recorded,
       -- A limited project's freed slot may let a queued job of it run: wake the workers.
       (SELECT p.concurrency_limit IS NOT NULL
        FROM flow_runs r JOIN projects p ON p.id = r.project_id
        WHERE r.id = %(run_id)s) AS gated;

-- name: set_response
-- A respond step ran: the reply for sync callers (and a parent's call_flow).
UPDATE flow_runs SET response = %(response)s WHERE id = %(run_id)s AND status = 'RUNNING';

-- name: pause_run
-- The run waits: keep its remaining timeout budget; expire it after the TTL when it waits
-- on something with no known time.
UPDATE flow_runs
SET status = 'PAUSED',
    paused_at = now(),
    timeout_remaining_seconds = greatest(0, extract(epoch FROM deadline_at - now())),
    deadline_at = NULL,
    pause_expires_at = CASE WHEN %(expires)s
                            THEN now() + make_interval(secs => %(ttl_seconds)s) END
WHERE id = %(run_id)s AND status = 'RUNNING'
RETURNING id;

-- name: ensure_waitpoint
-- Create the step's waitpoint unless a resume (or an earlier execution) already did.
INSERT INTO waitpoints (run_id, step_key, kind, resume_at, child_run_id)
VALUES (
    %(run_id)s, %(key)s, %(kind)s,
    CASE WHEN %(resume_in_seconds)s::double precision IS NOT NULL
         THEN now() + make_interval(secs => %(resume_in_seconds)s) END,
    %(child_run_id)s
)
ON CONFLICT (run_id, step_key) DO NOTHING;

-- name: lock_waitpoint
-- The step's waitpoint, locked: completing and pausing on it are serialised here.
SELECT state, resume_at, child_run_id, payload, resume_at <= now() AS due
FROM waitpoints
WHERE run_id = %(run_id)s AND step_key = %(key)s
FOR UPDATE;

-- name: close_waitpoint
-- The execution has consumed a due delay or timeout: mark it completed.
UPDATE waitpoints SET state = 'completed', completed_at = now()
WHERE run_id = %(run_id)s AND step_key = %(key)s AND state = 'pending';

-- name: complete_waitpoint
-- A resume arrives: complete the waitpoint (creating it if the run has not paused on it
-- yet). No row: it was completed before (a second resume).
INSERT INTO waitpoints (run_id, step_key, kind, state, payload, completed_at)
VALUES (%(run_id)s, %(key)s, %(kind)s, 'completed', %(payload)s, now())
ON CONFLICT (run_id, step_key) DO UPDATE
SET state = 'completed', payload = EXCLUDED.payload, completed_at = now()
WHERE waitpoints.state = 'pending'
RETURNING step_key;

-- name: continue_run
-- Schedule the run's execution now (enqueue its job or bring the queued one forward).
SELECT sluice_continue_run(%(run_id)s);

-- name: clear_response
-- A resumed run answers its resume caller anew: forget the reply already given.
UPDATE flow_runs SET response = NULL WHERE id = %(run_id)s;

-- name: resume_target
-- What a resume request needs to check its token.
SELECT id, project_id, status, resume_secret FROM flow_runs WHERE id = %(run_id)s;

-- name: run_reply
-- What a sync caller is waiting for.
SELECT status, response, output, error FROM flow_runs WHERE id = %(run_id)s;

-- name: cancel_run
-- Cancel a live run (the trigger clears its queued jobs and waitpoints and its children).
UPDATE flow_runs
SET status = 'CANCELED', error = 'canceled by request', finished_at = now(), deadline_at = NULL
WHERE id = %(run_id)s AND project_id = %(project_id)s AND NOT sluice_run_is_final(status)
RETURNING id;

-- name: expire_runs
-- Maintenance: live runs past their timeout, and paused runs past the paused-run TTL.
WITH due AS (
    SELECT id, status FROM flow_runs
    WHERE (status IN ('QUEUED', 'RUNNING') AND deadline_at < now())
       OR (status = 'PAUSED' AND pause_expires_at < now())
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE flow_runs r
SET status = 'TIMEOUT',
    error = CASE WHEN due.status = 'PAUSED'
                 THEN 'paused longer than SLUICE_PAUSED_RUN_TTL'
                 ELSE 'ran longer than SLUICE_RUN_TIMEOUT_SECONDS' END,
    finished_at = now(),
    deadline_at = NULL
FROM due
WHERE r.id = due.id
RETURNING r.id, due.status AS was;

-- name: retry_run
-- Re-run a finished, unsuccessful run from its failed step: it is queued again with a fresh
-- timeout budget; the execution re-runs every step whose record is not a success (a failure
-- tolerated by continue_on_error stays as it is). Waitpoints of those steps are forgotten,
-- so a timed-out wait waits again and a failed sub-flow is called again.
WITH run AS (
    SELECT id FROM flow_runs
    WHERE id = %(run_id)s AND project_id = %(project_id)s
      AND status IN ('FAILED', 'TIMEOUT', 'CANCELED', 'MEMORY_LIMIT_EXCEEDED',
                     'LOG_SIZE_EXCEEDED', 'INTERNAL_ERROR')
    FOR UPDATE
),
waits AS (
    DELETE FROM waitpoints w USING run
    WHERE w.run_id = run.id
      AND (w.state = 'pending'
           OR NOT EXISTS (SELECT FROM step_runs s
                          WHERE s.run_id = run.id AND s.key = w.step_key
                            AND s.status = 'SUCCEEDED'))
)
UPDATE flow_runs r
SET status = 'QUEUED', error = NULL, output = NULL, response = NULL, finished_at = NULL,
    deadline_at = now() + make_interval(secs => %(timeout_seconds)s),
    timeout_remaining_seconds = NULL, paused_at = NULL, pause_expires_at = NULL
FROM run
WHERE r.id = run.id
RETURNING r.id;
