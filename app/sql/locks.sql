-- name: acquire_lock
-- Wait for the named session-level lock (the wait is bounded by lock_timeout).
SELECT pg_advisory_lock(hashtextextended('sluice:lock:' || %(name)s, 0));

-- name: try_acquire_lock
-- Take the named session-level lock if it is free; true when taken.
SELECT pg_try_advisory_lock(hashtextextended('sluice:lock:' || %(name)s, 0));

-- name: release_lock
-- Release the named session-level lock; false when this session did not hold it.
SELECT pg_advisory_unlock(hashtextextended('sluice:lock:' || %(name)s, 0));

-- name: current_lock_timeout
-- The lock_timeout in force, to restore after a bounded wait.
SELECT current_setting('lock_timeout');

-- name: set_lock_timeout
-- Bound lock waits for the rest of this transaction (a value like '250ms'; '0' waits forever).
SELECT set_config('lock_timeout', %(timeout)s, true);

-- name: try_acquire_leadership
-- Take the leader lock of a role if no live session holds it; true when taken.
SELECT pg_try_advisory_lock(hashtextextended('sluice:leader:' || %(role)s, 0));

-- name: holds_leadership
-- Whether this session still holds the leader lock of a role.
SELECT EXISTS (
    SELECT 1
    FROM pg_locks
    WHERE locktype = 'advisory'
      AND pid = pg_backend_pid()
      AND granted
      AND ((classid::bigint << 32) | objid::bigint)
          = hashtextextended('sluice:leader:' || %(role)s, 0)
);
