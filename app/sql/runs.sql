-- name: start_run
-- An execution begins: a live run turns RUNNING (resuming its timeout budget) and is loaded
-- with its flow, finished steps and waitpoints. No row: the run is final (or gone).
WITH clock AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
),
-- The run as it was (a CTE sees the statement's snapshot): is this its first start?
before AS (
    SELECT started_at IS NULL AS first_start FROM flow_runs WHERE id = %(run_id)s
),
run AS (
    UPDATE flow_runs
    SET status = 'RUNNING',
        started_at = coalesce(started_at, clock.now),
        deadline_at = coalesce(
            deadline_at, clock.now + make_interval(secs => coalesce(timeout_remaining_seconds, 0))
        ),
        timeout_remaining_seconds = NULL,
        paused_at = NULL,
        pause_expires_at = NULL
    FROM clock
    WHERE id = %(run_id)s AND status IN ('QUEUED', 'RUNNING', 'PAUSED')
    RETURNING flow_runs.*
)
SELECT run.id, run.project_id, run.flow_id, f.name AS flow_name, run.flow_version_id,
       run.version, run.trigger, run.resume_secret, run.parent_run_id, run.deadline_at,
       run.depth, p.allow_network,
       coalesce(%(now)s::timestamptz, clock_timestamp()) AS db_now,
       run.created_at, run.started_at, run.traceparent,
       coalesce((SELECT first_start FROM before), false) AS first_start,
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
JOIN flows f ON f.id = run.flow_id
JOIN projects p ON p.id = run.project_id;

-- name: get_definition
-- A flow version's definition (immutable: cached by id).
SELECT definition FROM flow_versions WHERE id = %(version_id)s;

-- name: run_status
-- The run's status, as seen by an execution between steps (a cancel or timeout shows here).
SELECT status FROM flow_runs WHERE id = %(run_id)s;

-- name: lock_run
-- Lock the run row first in a pause: pause and cancel take run, waitpoint, job in order.
SELECT status FROM flow_runs WHERE id = %(run_id)s FOR UPDATE;

-- name: record_steps
-- Record step results and, with set_response, the reply, of a run that is still RUNNING.
WITH steps AS (
    SELECT sluice_record_steps(%(run_id)s, %(steps)s::jsonb) AS recorded
),
replied AS (
    UPDATE flow_runs SET response = %(response)s
    WHERE id = %(run_id)s AND status = 'RUNNING' AND %(set_response)s
)
SELECT recorded FROM steps;

-- name: save_progress
-- Between steps: renew the job's lease and, only if it is still ours, record step results
-- and the reply. Returns whether the lease held and the run's status (a cancel shows here).
WITH held AS (
    UPDATE jobs j
    SET lease_expires_at = coalesce(%(now)s::timestamptz, now())
                           + make_interval(secs => %(lease_seconds)s)
    WHERE j.id = %(job_id)s AND sluice_lease_held(j, %(owner)s, %(attempt)s)
    RETURNING j.id
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
    DELETE FROM jobs j
    WHERE j.id = %(job_id)s AND sluice_lease_held(j, %(owner)s, %(attempt)s)
    RETURNING j.id
),
steps AS (
    SELECT sluice_record_steps(%(run_id)s, %(steps)s::jsonb) AS recorded FROM held
),
ended AS (
    UPDATE flow_runs r
    SET status = %(status)s, output = %(output)s, error = %(error)s,
        finished_at = coalesce(%(now)s::timestamptz, now()),
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

-- name: pause_run
-- The run waits: keep its remaining timeout budget; expire it after the TTL when it waits
-- on something with no known time.
WITH clock AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
)
UPDATE flow_runs
SET status = 'PAUSED',
    paused_at = clock.now,
    timeout_remaining_seconds = greatest(0, extract(epoch FROM deadline_at - clock.now)),
    deadline_at = NULL,
    pause_expires_at = CASE WHEN %(expires)s
                            THEN clock.now + make_interval(secs => %(ttl_seconds)s) END
FROM clock
WHERE id = %(run_id)s AND status = 'RUNNING'
RETURNING id;

-- name: ensure_waitpoint
-- Create the step's waitpoint unless a resume (or an earlier execution) already did.
INSERT INTO waitpoints (run_id, step_key, kind, resume_at, child_run_id, created_at)
SELECT %(run_id)s, %(key)s, %(kind)s,
       CASE WHEN %(resume_in_seconds)s::double precision IS NOT NULL
            THEN now + make_interval(secs => %(resume_in_seconds)s) END,
       %(child_run_id)s, now
FROM (SELECT coalesce(%(now)s::timestamptz, now()) AS now) AS clock
ON CONFLICT (run_id, step_key) DO NOTHING;

-- name: lock_waitpoint
-- The step's waitpoint, locked: completing and pausing on it are serialised here.
SELECT state, resume_at, child_run_id, payload,
       resume_at <= coalesce(%(now)s::timestamptz, now()) AS due
FROM waitpoints
WHERE run_id = %(run_id)s AND step_key = %(key)s
FOR UPDATE;

-- name: close_waitpoint
-- The execution has consumed a due delay or timeout: mark it completed.
UPDATE waitpoints SET state = 'completed', completed_at = coalesce(%(now)s::timestamptz, now())
WHERE run_id = %(run_id)s AND step_key = %(key)s AND state = 'pending';

-- name: continue_run
-- Schedule the run's execution at `at` (now by default): enqueue its job, or bring the
-- queued one forward.
SELECT sluice_continue_run(%(run_id)s, coalesce(%(at)s::timestamptz, now()));

-- name: expire_runs
-- Maintenance: live runs past their timeout, and paused runs past the paused-run TTL.
WITH due AS (
    SELECT id, status FROM flow_runs
    WHERE (status IN ('QUEUED', 'RUNNING') AND deadline_at < coalesce(%(now)s::timestamptz, now()))
       OR (status = 'PAUSED' AND pause_expires_at < coalesce(%(now)s::timestamptz, now()))
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE flow_runs r
SET status = 'TIMEOUT',
    error = CASE WHEN due.status = 'PAUSED'
                 THEN 'paused longer than SLUICE_PAUSED_RUN_TTL'
                 ELSE 'ran longer than SLUICE_RUN_TIMEOUT_SECONDS' END,
    finished_at = coalesce(%(now)s::timestamptz, now()),
    deadline_at = NULL
FROM due
WHERE r.id = due.id
RETURNING r.id, due.status AS was, r.project_id,
          (SELECT f.name FROM flows f WHERE f.id = r.flow_id) AS flow_name, r.error;
