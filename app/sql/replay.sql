-- name: retry_plan
-- A run of the project, whether it may be retried, and the version a retry would run
-- (its own, or with latest the flow's live one) with that version's definition.
SELECT r.status, r.status IN ('FAILED', 'TIMEOUT', 'CANCELED', 'MEMORY_LIMIT_EXCEEDED',
                              'LOG_SIZE_EXCEEDED', 'INTERNAL_ERROR') AS retryable,
       v.id AS version_id, v.version, v.definition
FROM flow_runs r
LEFT JOIN sluice_live_flows live ON live.flow_id = r.flow_id AND %(latest)s
JOIN flow_versions v ON v.id = coalesce(live.version_id, r.flow_version_id)
WHERE r.id = %(run_id)s AND r.project_id = %(project_id)s;

-- name: requeue_runs
-- Queue finished, unsuccessful runs of the project again (then continue_run each): with
-- a fresh timeout budget, on version_id (NULL: the live one when latest, else their own),
-- marked with retry_batch (NULL keeps the mark). The steps named in forget_steps lose their
-- records (they and the steps after them run again); otherwise, as retry_run, every step
-- whose record is not a success runs again. Waitpoints of steps that will run again are
-- forgotten. Runs that are not in a failed state are left as they are (not returned).
WITH run AS (
    SELECT r.id, coalesce(%(version_id)s::bigint, live.version_id, r.flow_version_id) AS version_id
    FROM flow_runs r
    LEFT JOIN sluice_live_flows live ON live.flow_id = r.flow_id AND %(latest)s
    WHERE r.id = ANY(%(run_ids)s::uuid[]) AND r.project_id = %(project_id)s
      AND r.status IN ('FAILED', 'TIMEOUT', 'CANCELED', 'MEMORY_LIMIT_EXCEEDED',
                       'LOG_SIZE_EXCEEDED', 'INTERNAL_ERROR')
    ORDER BY r.id
    FOR UPDATE OF r
),
forgotten AS (
    DELETE FROM step_runs s USING run
    WHERE s.run_id = run.id AND s.step_id = ANY(%(forget_steps)s::text[])
    RETURNING s.run_id, s.key
),
waits AS (
    DELETE FROM waitpoints w USING run
    WHERE w.run_id = run.id
      AND (w.state = 'pending'
           OR EXISTS (SELECT FROM forgotten f WHERE f.run_id = w.run_id AND f.key = w.step_key)
           OR NOT EXISTS (SELECT FROM step_runs s
                          WHERE s.run_id = run.id AND s.key = w.step_key
                            AND s.status = 'SUCCEEDED'))
)
UPDATE flow_runs r
SET status = 'QUEUED', error = NULL, output = NULL, response = NULL, finished_at = NULL,
    deadline_at = coalesce(%(now)s::timestamptz, now())
                  + make_interval(secs => %(timeout_seconds)s),
    timeout_remaining_seconds = NULL, paused_at = NULL, pause_expires_at = NULL,
    job_max_attempts = %(max_attempts)s,
    flow_version_id = v.id, version = v.version,
    retry_batch = coalesce(%(batch)s::uuid, r.retry_batch)
FROM run
JOIN flow_versions v ON v.id = run.version_id
WHERE r.id = run.id
RETURNING r.id;

-- name: replay_source
-- A run of the project, whether it has ended, its trigger, and the version a replay would
-- start (its own, or with latest the flow's live one).
SELECT r.status, sluice_run_is_final(r.status) AS finished, r.trigger, r.project_id,
       r.flow_id, coalesce(live.version_id, r.flow_version_id) AS version_id,
       coalesce(live.version, r.version) AS version
FROM flow_runs r
LEFT JOIN sluice_live_flows live ON live.flow_id = r.flow_id AND %(latest)s
WHERE r.id = %(run_id)s AND r.project_id = %(project_id)s;

-- name: insert_replay
-- A new QUEUED run replaying replay_of (the flow_runs_created trigger enqueues its job),
-- unless the project has max_live live runs (no row then).
INSERT INTO flow_runs (
    id, project_id, flow_id, flow_version_id, version, trigger, resume_secret, deadline_at,
    job_max_attempts, created_at, replay_of
)
SELECT %(run_id)s, %(project_id)s, %(flow_id)s, %(version_id)s, %(version)s, %(trigger)s,
       %(resume_secret)s, clock.now + make_interval(secs => %(timeout_seconds)s),
       %(max_attempts)s, clock.now, %(replay_of)s
FROM (SELECT coalesce(%(now)s::timestamptz, now()) AS now) AS clock
WHERE (SELECT count(*) FROM (
          SELECT FROM flow_runs live
          WHERE live.project_id = %(project_id)s
            AND live.status IN ('QUEUED', 'RUNNING', 'PAUSED')
          LIMIT %(max_live)s
      ) AS counted) < %(max_live)s
RETURNING id;

-- name: flow_named
-- A flow of the project by name (a bulk retry's filter).
SELECT id FROM flows WHERE project_id = %(project_id)s AND name = %(name)s;

-- name: count_matching
-- How many runs a bulk retry's filter matches now (its dry run), at most limit.
SELECT count(*) FROM (
    SELECT FROM flow_runs
    WHERE project_id = %(project_id)s
      AND (%(flow_id)s::uuid IS NULL OR flow_id = %(flow_id)s)
      AND status = %(status)s
      AND created_at >= coalesce(%(since)s::timestamptz, '-infinity')
      AND created_at < %(until)s::timestamptz
    LIMIT %(limit)s
) AS counted;

-- name: next_batch
-- The next runs a bulk retry is due to requeue: matching its filter and not marked with its
-- batch id yet (a run it requeued, and which failed again, is not taken twice).
SELECT id FROM flow_runs
WHERE project_id = %(project_id)s
  AND (%(flow_id)s::uuid IS NULL OR flow_id = %(flow_id)s)
  AND status = %(status)s
  AND created_at >= coalesce(%(since)s::timestamptz, '-infinity')
  AND created_at < %(until)s::timestamptz
  AND retry_batch IS DISTINCT FROM %(batch)s::uuid
ORDER BY created_at, id
LIMIT %(limit)s;
