-- name: find_wait
-- A run with one of its step instances, for an approval page or a resume: the run's flow
-- and definition, the step's waitpoint (if any) and its record (if any).
SELECT r.id AS run_id, r.project_id, r.status, r.resume_secret, f.name AS flow, r.version,
       v.definition, w.kind, w.state, w.resume_at, w.payload, w.created_at AS waiting_since,
       w.completed_at, s.status AS step_status, s.output AS step_output
FROM flow_runs r
JOIN flows f ON f.id = r.flow_id
JOIN flow_versions v ON v.id = r.flow_version_id
LEFT JOIN waitpoints w ON w.run_id = r.id AND w.step_key = %(key)s
LEFT JOIN step_runs s ON s.run_id = r.id AND s.key = %(key)s
WHERE r.id = %(run_id)s;

-- name: lock_wait
-- The step's waitpoint of a live run of the project, locked (as a pause locks it), for a
-- resume by a key holder. No row: no such run, or the step is not waiting there.
SELECT w.kind, w.state
FROM waitpoints w
JOIN flow_runs r ON r.id = w.run_id
WHERE w.run_id = %(run_id)s AND w.step_key = %(key)s AND r.project_id = %(project_id)s
FOR UPDATE OF w;

-- name: pending_waits
-- A run's pending waitpoints in the order they were made, with the run's definition and
-- resume secret (to describe a webhook wait and give its resume URL).
SELECT w.step_key, w.kind, w.resume_at, w.child_run_id, w.created_at, v.definition,
       r.resume_secret
FROM waitpoints w
JOIN flow_runs r ON r.id = w.run_id
JOIN flow_versions v ON v.id = r.flow_version_id
WHERE w.run_id = %(run_id)s AND w.state = 'pending'
ORDER BY w.created_at, w.step_key;
