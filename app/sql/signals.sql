-- name: notify
-- Wake the listeners of a channel (the payload is a hint, never the data itself).
SELECT pg_notify(%(channel)s, %(payload)s);
