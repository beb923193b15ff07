-- name: list_runs
-- The project's runs, newest first, filtered by flow name, status and creation time, after
-- a cursor.
SELECT r.id, f.name AS flow, r.flow_id, r.version, r.status, r.parent_run_id,
       r.created_at, r.started_at, r.finished_at, r.error
FROM flow_runs r
JOIN flows f ON f.id = r.flow_id
WHERE r.project_id = %(project_id)s
  AND (%(flow)s::text IS NULL OR f.name = %(flow)s::text)
  AND (%(status)s::text IS NULL OR r.status = %(status)s::text)
  AND (%(since)s::timestamptz IS NULL OR r.created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR r.created_at < %(until)s::timestamptz)
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (r.created_at, r.id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s;

-- name: get_run
-- One run of the project with what it was given and what it produced.
SELECT r.id, f.name AS flow, r.flow_id, r.version, r.status, r.parent_run_id,
       r.created_at, r.started_at, r.finished_at, r.error,
       r.trigger, r.output, r.response, r.replay_of,
       (SELECT extract(epoch FROM sum(coalesce(a.finished_at, now()) - a.started_at))::float8
        FROM run_attempts a WHERE a.run_id = r.id) AS active_seconds
FROM flow_runs r
JOIN flows f ON f.id = r.flow_id
WHERE r.id = %(run_id)s AND r.project_id = %(project_id)s;

-- name: get_step_runs
-- A run's step instances in the order they were first recorded.
SELECT key, step_id, type, status, attempts, started_at, finished_at, output, error,
       stdout, stderr
FROM step_runs
WHERE run_id = %(run_id)s
ORDER BY id;

-- name: get_run_attempts
-- A run's attempts, in order (kept by the flow_runs_attempts trigger, migration 0013).
SELECT attempt, started_at, finished_at FROM run_attempts
WHERE run_id = %(run_id)s ORDER BY attempt;

-- name: get_children
-- The runs a run started (call_flow).
SELECT r.id, f.name AS flow, r.flow_id, r.version, r.status, r.parent_run_id,
       r.created_at, r.started_at, r.finished_at, r.error
FROM flow_runs r
JOIN flows f ON f.id = r.flow_id
WHERE r.parent_run_id = %(run_id)s
ORDER BY r.created_at, r.id;

-- name: run_tree
-- A run and its descendants (to stop the executions a cancel ended).
WITH RECURSIVE tree AS (
    SELECT id, 1 AS depth FROM flow_runs WHERE id = %(run_id)s
    UNION ALL
    SELECT r.id, tree.depth + 1 FROM flow_runs r JOIN tree ON r.parent_run_id = tree.id
    WHERE tree.depth < 10000
)
SELECT id FROM tree;

-- name: live_runs_by_status
-- Metrics: runs not yet final, by status (served by a partial index).
SELECT status, count(*) FROM flow_runs
WHERE status IN ('QUEUED', 'RUNNING', 'PAUSED')
GROUP BY status;

-- name: queue_depth
-- Metrics: jobs ready to run, jobs running, dead jobs.
SELECT (SELECT count(*) FROM jobs WHERE state = 'queued' AND run_at <= now()) AS ready,
       (SELECT count(*) FROM jobs WHERE state = 'queued' AND run_at > now()) AS scheduled,
       (SELECT count(*) FROM jobs WHERE state = 'running') AS running,
       (SELECT count(*) FROM dead_jobs) AS dead;
