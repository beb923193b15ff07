-- name: enqueue_jobs
-- Insert a batch in one statement; a job whose idempotency key is taken is not inserted.
WITH input AS (
    SELECT nextval('jobs_id_seq') AS id, i.*
    FROM unnest(
        %(kinds)s::text[], %(project_ids)s::bigint[], %(run_ids)s::uuid[],
        %(payloads)s::jsonb[], %(priorities)s::smallint[], %(run_ats)s::timestamptz[],
        %(max_attempts)s::integer[], %(idempotency_keys)s::text[]
    ) WITH ORDINALITY AS i (
        kind, project_id, run_id, payload, priority, run_at, max_attempts, idempotency_key, ord
    )
),
inserted AS (
    INSERT INTO jobs (
        id, kind, project_id, run_id, payload, priority, run_at, max_attempts, idempotency_key
    )
    SELECT id, kind, project_id, run_id, payload, priority,
           coalesce(run_at, coalesce(%(now)s::timestamptz, now())), max_attempts, idempotency_key
    FROM input
    ORDER BY ord
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
)
SELECT input.ord, inserted.id AS job_id
FROM input
LEFT JOIN inserted ON inserted.id = input.id
ORDER BY input.ord;

-- name: find_jobs_by_idempotency_key
-- The live (queued or running) jobs holding these idempotency keys.
SELECT idempotency_key, id AS job_id
FROM jobs
WHERE idempotency_key = ANY (%(keys)s::text[]);

-- name: claim_jobs
-- Lease up to %(limit)s ready jobs to %(owner)s, honouring each project's concurrency limit.
SELECT id, kind, project_id, run_id, payload, priority, run_at, attempt, max_attempts,
       lease_owner, lease_expires_at, idempotency_key, created_at
FROM sluice_claim_jobs(%(owner)s, %(limit)s, %(lease_seconds)s, %(now)s::timestamptz)
ORDER BY priority, run_at, id;

-- name: renew_leases
-- Heartbeat: extend every lease still held by %(owner)s at the given attempts; returns those.
-- (Matching by primary key with array_position keeps a cached generic plan on jobs_pkey;
-- a join with unnest() drifts to scanning every running job.)
UPDATE jobs j
SET lease_expires_at = coalesce(%(now)s::timestamptz, now())
                       + make_interval(secs => %(lease_seconds)s)
WHERE j.id = ANY (%(job_ids)s::bigint[])
  AND sluice_lease_held(
      j, %(owner)s, (%(attempts)s::integer[])[array_position(%(job_ids)s::bigint[], j.id)]
  )
RETURNING j.id AS job_id;

-- name: complete_jobs
-- Delete finished jobs; a job not returned was no longer ours (lease lost).
DELETE FROM jobs j
WHERE j.id = ANY (%(job_ids)s::bigint[])
  AND sluice_lease_held(
      j, %(owner)s, (%(attempts)s::integer[])[array_position(%(job_ids)s::bigint[], j.id)]
  )
RETURNING j.id AS job_id;

-- name: retry_job
-- Re-queue after a failure with a delay, or bury it once attempts are spent; no row: lost.
WITH held AS (
    SELECT j.id, j.attempt < j.max_attempts AND NOT %(final)s AS again
    FROM jobs j
    WHERE j.id = %(job_id)s AND sluice_lease_held(j, %(owner)s, %(attempt)s)
    FOR UPDATE
),
requeued AS (
    UPDATE jobs j
    SET state = 'queued',
        lease_owner = NULL,
        lease_expires_at = NULL,
        last_error = %(error)s,
        run_at = coalesce(%(now)s::timestamptz, now()) + make_interval(secs => %(delay_seconds)s)
    FROM held
    WHERE j.id = held.id AND held.again
    RETURNING j.id
),
finished AS (
    DELETE FROM jobs j
    USING held
    WHERE j.id = held.id AND NOT held.again
    RETURNING j.*
),
buried AS (
    INSERT INTO dead_jobs (
        id, kind, project_id, run_id, payload, priority, attempt, max_attempts,
        last_owner, last_error, idempotency_key, created_at, died_at
    )
    SELECT id, kind, project_id, run_id, payload, priority, attempt, max_attempts,
           lease_owner, %(error)s, idempotency_key, created_at,
           coalesce(%(now)s::timestamptz, now())
    FROM finished
    RETURNING id
)
SELECT (SELECT count(*) FROM requeued) AS requeued, (SELECT count(*) FROM buried) AS buried;

-- name: rescue_expired_jobs
-- Maintenance: re-queue running jobs whose lease expired, or bury those out of attempts.
WITH expired AS (
    SELECT id
    FROM jobs
    WHERE state = 'running' AND lease_expires_at < coalesce(%(now)s::timestamptz, now())
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
requeued AS (
    UPDATE jobs j
    SET state = 'queued',
        lease_owner = NULL,
        lease_expires_at = NULL,
        run_at = coalesce(%(now)s::timestamptz, now()),
        last_error = 'lease expired: worker ' || j.lease_owner || ' presumed dead'
    FROM expired
    WHERE j.id = expired.id AND j.attempt < j.max_attempts
    RETURNING j.id
),
finished AS (
    DELETE FROM jobs j
    USING expired
    WHERE j.id = expired.id AND j.attempt >= j.max_attempts
    RETURNING j.*
),
buried AS (
    INSERT INTO dead_jobs (
        id, kind, project_id, run_id, payload, priority, attempt, max_attempts,
        last_owner, last_error, idempotency_key, created_at, died_at
    )
    SELECT id, kind, project_id, run_id, payload, priority, attempt, max_attempts,
           lease_owner,
           'lease expired on the last attempt: worker ' || lease_owner || ' presumed dead',
           idempotency_key, created_at, coalesce(%(now)s::timestamptz, now())
    FROM finished
    RETURNING id
)
SELECT 'requeued' AS outcome, id AS job_id FROM requeued
UNION ALL
SELECT 'dead', id FROM buried;

-- name: release_jobs
-- Graceful stop: hand unfinished jobs back for another worker to take at once.
UPDATE jobs j
SET state = 'queued',
    lease_owner = NULL,
    lease_expires_at = NULL,
    run_at = coalesce(%(now)s::timestamptz, now()),
    last_error = 'released by worker ' || %(owner)s || ' stopping'
WHERE j.id = ANY (%(job_ids)s::bigint[])
  AND sluice_lease_held(
      j, %(owner)s, (%(attempts)s::integer[])[array_position(%(job_ids)s::bigint[], j.id)]
  )
RETURNING j.id AS job_id;
