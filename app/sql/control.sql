-- name: find_webhook_flow
-- A live, enabled flow with its latest version: what a webhook starts a run of.
SELECT flow_id, project_id, name, version_id, version, webhook
FROM sluice_live_flows
WHERE flow_id = %(flow_id)s AND enabled;

-- name: find_flow_by_name
-- A live, enabled flow of the project by name, with its latest version (call_flow).
SELECT flow_id, project_id, name, version_id, version, webhook
FROM sluice_live_flows
WHERE project_id = %(project_id)s AND name = %(name)s AND enabled;

-- name: start_webhook_run
-- A webhook's run (and, by the flow_runs_created trigger, its job) in one statement, when
-- the flow is live and enabled and its webhook verifies nothing, and its idempotency key (if any) is
-- free, and the project has fewer than max_live live runs. No row: unknown, disabled,
-- verified or without a webhook (then find_webhook_flow), the key is taken (then keyed_run), or the project is at
-- its cap (then at_live_cap).
WITH clock AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
),
flow AS (
    SELECT f.flow_id, f.project_id, f.version_id, f.version
    FROM sluice_live_flows f
    WHERE f.flow_id = %(flow_id)s AND f.enabled AND f.open
),
keyed AS (
    INSERT INTO run_keys (flow_id, key, run_id, created_at)
    SELECT flow.flow_id, %(key)s, %(run_id)s, clock.now
    FROM flow, clock
    WHERE %(key)s::text IS NOT NULL
    ON CONFLICT (flow_id, key) DO UPDATE
    SET run_id = EXCLUDED.run_id, created_at = EXCLUDED.created_at
    WHERE run_keys.created_at < EXCLUDED.created_at - make_interval(secs => %(key_window)s)
    RETURNING key
)
INSERT INTO flow_runs (
    id, project_id, flow_id, flow_version_id, version, trigger, resume_secret, deadline_at,
    job_max_attempts, created_at, traceparent
)
SELECT %(run_id)s, flow.project_id, flow.flow_id, flow.version_id, flow.version, %(trigger)s,
       %(resume_secret)s, clock.now + make_interval(secs => %(timeout_seconds)s),
       %(max_attempts)s, clock.now, %(traceparent)s
FROM flow, clock
WHERE (%(key)s::text IS NULL OR EXISTS (SELECT FROM keyed))
  AND (SELECT count(*) FROM (
          SELECT FROM flow_runs live
          WHERE live.project_id = flow.project_id
            AND live.status IN ('QUEUED', 'RUNNING', 'PAUSED')
          LIMIT %(max_live)s
      ) AS counted) < %(max_live)s
RETURNING id;

-- name: take_key
-- A signed webhook's idempotency key, taken for its run before the run is inserted (in the
-- same transaction). No row: the key is taken (then keyed_run).
INSERT INTO run_keys (flow_id, key, run_id, created_at)
VALUES (%(flow_id)s, %(key)s, %(run_id)s, coalesce(%(now)s::timestamptz, now()))
ON CONFLICT (flow_id, key) DO UPDATE
SET run_id = EXCLUDED.run_id, created_at = EXCLUDED.created_at
WHERE run_keys.created_at < EXCLUDED.created_at - make_interval(secs => %(key_window)s)
RETURNING key;

-- name: keyed_run
-- The run a webhook request with this idempotency key started, within the window.
SELECT run_id FROM run_keys
WHERE flow_id = %(flow_id)s AND key = %(key)s
  AND created_at >= coalesce(%(now)s::timestamptz, now()) - make_interval(secs => %(key_window)s);

-- name: forget_keys
-- Maintenance: idempotency keys older than the window.
DELETE FROM run_keys
WHERE ctid IN (
    SELECT ctid FROM run_keys
    WHERE created_at < coalesce(%(now)s::timestamptz, now()) - make_interval(secs => %(key_window)s)
    LIMIT %(limit)s
);

-- name: insert_run
-- A new run, QUEUED, its active-time budget counting from now; the flow_runs_created
-- trigger enqueues its job. A run of this id made before (by an earlier try of the same
-- transaction whose answer was lost) is left as it is.
INSERT INTO flow_runs (
    id, project_id, flow_id, flow_version_id, version, trigger, resume_secret,
    parent_run_id, parent_step_key, deadline_at, job_max_attempts, created_at, depth,
    traceparent
)
SELECT %(run_id)s, %(project_id)s, %(flow_id)s, %(version_id)s, %(version)s, %(trigger)s,
       %(resume_secret)s, %(parent_run_id)s, %(parent_step_key)s,
       clock.now + make_interval(secs => %(timeout_seconds)s), %(max_attempts)s, clock.now,
       %(depth)s, %(traceparent)s
FROM (SELECT coalesce(%(now)s::timestamptz, now()) AS now) AS clock
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: at_live_cap
-- Whether the project has max_live live runs (or more): no new run until some end.
SELECT count(*) >= %(max_live)s FROM (
    SELECT FROM flow_runs
    WHERE project_id = %(project_id)s AND status IN ('QUEUED', 'RUNNING', 'PAUSED')
    LIMIT %(max_live)s
) AS counted;

-- name: resume_target
-- What a resume request needs to check its token.
SELECT id, project_id, status, resume_secret FROM flow_runs WHERE id = %(run_id)s;

-- name: complete_waitpoint
-- A resume arrives: complete the waitpoint (creating it if the run has not paused on it
-- yet). No row: it was completed before (a second resume).
INSERT INTO waitpoints (run_id, step_key, kind, state, payload, created_at, completed_at)
SELECT %(run_id)s, %(key)s, %(kind)s, 'completed', %(payload)s, now, now
FROM (SELECT coalesce(%(now)s::timestamptz, now()) AS now) AS clock
ON CONFLICT (run_id, step_key) DO UPDATE
SET state = 'completed', payload = EXCLUDED.payload, completed_at = EXCLUDED.completed_at
WHERE waitpoints.state = 'pending'
RETURNING step_key;

-- name: clear_response
-- A resumed run answers its resume caller anew: forget the reply already given.
UPDATE flow_runs SET response = NULL WHERE id = %(run_id)s;

-- name: run_reply
-- What a sync caller is waiting for.
SELECT status, response, output, error FROM flow_runs WHERE id = %(run_id)s;

-- name: cancel_run
-- Cancel a live run (the trigger clears its queued jobs and waitpoints and its children).
UPDATE flow_runs
SET status = 'CANCELED', error = 'canceled by request',
    finished_at = coalesce(%(now)s::timestamptz, now()), deadline_at = NULL
WHERE id = %(run_id)s AND project_id = %(project_id)s AND NOT sluice_run_is_final(status)
RETURNING id;

-- name: find_flow_by_slugs
-- A live, enabled flow by its project's name and its own (a webhook's stable URL).
SELECT f.flow_id
FROM sluice_live_flows f
JOIN projects p ON p.id = f.project_id
WHERE p.name = %(project)s AND f.name = %(flow)s AND f.enabled;
