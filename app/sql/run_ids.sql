-- name: runs_in_id_range
-- The project's runs whose id lies in [low, high] (every id with a given prefix), newest
-- first, at most limit: a short id names one run when exactly one row comes back.
SELECT r.id, f.name AS flow, r.status, r.created_at
FROM flow_runs r
JOIN flows f ON f.id = r.flow_id
WHERE r.id BETWEEN %(low)s AND %(high)s AND r.project_id = %(project_id)s
ORDER BY r.created_at DESC
LIMIT %(limit)s;
