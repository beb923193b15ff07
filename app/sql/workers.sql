-- name: register_worker
-- Record a worker process start (ids are unique per start).
INSERT INTO workers (id, host, pid, container_type, slots, version)
VALUES (%(id)s, %(host)s, %(pid)s, %(container_type)s, %(slots)s, %(version)s);

-- name: touch_worker
-- Heartbeat of the registry: the worker is alive.
UPDATE workers SET last_seen = coalesce(%(now)s::timestamptz, now()) WHERE id = %(id)s;

-- name: stop_worker
-- Mark a worker stopped (graceful stop).
UPDATE workers SET stopped_at = now(), last_seen = now() WHERE id = %(id)s;

-- name: list_workers
-- Workers seen since a cut-off, newest first.
SELECT id, host, pid, container_type, slots, version, started_at, last_seen, stopped_at
FROM workers
WHERE last_seen >= coalesce(%(since)s::timestamptz, '-infinity')
ORDER BY started_at DESC
LIMIT %(limit)s;
