-- name: queue_health
-- Metrics: the age of the oldest job ready to run (0 when none), and the workers seen
-- within the stale window and not stopped.
SELECT coalesce(extract(epoch FROM now() - min(j.run_at)), 0)::float8 AS oldest_ready_seconds,
       (SELECT count(*) FROM workers w
        WHERE w.stopped_at IS NULL
          AND w.last_seen >= now() - make_interval(secs => %(stale_seconds)s))::float8 AS workers
FROM jobs j
WHERE j.state = 'queued' AND j.run_at <= now();
