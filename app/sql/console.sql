-- name: list_projects
-- Every project, for the admin's project picker.
SELECT id, name FROM projects ORDER BY name;

-- name: waiting_steps
-- Pending wait_for_webhook steps of paused runs (of one project, or every project).
-- With the run's flow version and its definition, for the step's choices.
SELECT w.run_id, w.step_key, w.created_at AS waiting_since, r.project_id, p.name AS project,
       f.name AS flow, r.created_at AS run_created_at, r.resume_secret,
       r.flow_version_id, v.definition
FROM flow_runs r
JOIN waitpoints w ON w.run_id = r.id
JOIN flows f ON f.id = r.flow_id
JOIN flow_versions v ON v.id = r.flow_version_id
JOIN projects p ON p.id = r.project_id
WHERE r.status = 'PAUSED'
  AND (%(project_id)s::bigint IS NULL OR r.project_id = %(project_id)s::bigint)
  AND (%(run_id)s::uuid IS NULL OR r.id = %(run_id)s::uuid)
  AND w.kind = 'webhook' AND w.state = 'pending'
ORDER BY w.created_at, w.run_id, w.step_key
LIMIT %(limit)s;

-- name: flow_stats
-- Per flow of the project: runs created since a time, and how many of them failed.
SELECT f.name, count(*) AS runs,
       count(*) FILTER (WHERE r.status NOT IN ('QUEUED', 'RUNNING', 'PAUSED', 'SUCCEEDED'))
         AS failed
FROM flow_runs r
JOIN flows f ON f.id = r.flow_id
WHERE r.project_id = %(project_id)s AND r.created_at >= %(since)s
GROUP BY f.name;

-- name: flow_versions
-- A flow's versions, newest first.
SELECT version, content_hash, created_at
FROM flow_versions WHERE flow_id = %(flow_id)s
ORDER BY version DESC;

-- name: flow_version
-- One version's definition.
SELECT definition FROM flow_versions WHERE flow_id = %(flow_id)s AND version = %(version)s;

-- name: child_links
-- The child runs a run's call_flow steps started, by step key.
SELECT step_key, child_run_id FROM waitpoints
WHERE run_id = %(run_id)s AND child_run_id IS NOT NULL;

-- name: queue_health
-- Ready jobs' oldest age in seconds (NULL: none), and dead jobs' count.
SELECT extract(epoch FROM now() - min(run_at)) AS oldest_ready_seconds,
       (SELECT count(*) FROM dead_jobs) AS dead
FROM jobs WHERE state = 'queued' AND run_at <= now();

-- name: latest_dead_jobs
-- The most recent dead jobs with their last error.
SELECT d.id, d.kind, d.run_id, p.name AS project, d.attempt, d.last_error, d.died_at
FROM dead_jobs d LEFT JOIN projects p ON p.id = d.project_id
ORDER BY d.died_at DESC
LIMIT %(limit)s;
