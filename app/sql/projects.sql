-- name: create_project
-- A new project; the name is unique.
INSERT INTO projects (name, concurrency_limit)
VALUES (%(name)s, %(concurrency_limit)s)
RETURNING id, name, concurrency_limit, allow_network, on_failure_flow, created_at;

-- name: get_project
-- One project by id.
SELECT id, name, concurrency_limit, allow_network, on_failure_flow, created_at FROM projects WHERE id = %(id)s;

-- name: update_project
-- Change the given settings of a project (concurrency limit only with set_limit, NULL is
-- unlimited; the failure handler only with set_handler, NULL is none), leaving the others.
UPDATE projects
SET concurrency_limit = CASE WHEN %(set_limit)s THEN %(concurrency_limit)s::integer
                             ELSE concurrency_limit END,
    allow_network = coalesce(%(allow_network)s::boolean, allow_network),
    on_failure_flow = CASE WHEN %(set_handler)s THEN %(on_failure_flow)s::text
                           ELSE on_failure_flow END
WHERE id = %(id)s
RETURNING id, name, concurrency_limit, allow_network, on_failure_flow, created_at;

-- name: count_projects
-- How many projects exist (first-start bootstrap).
SELECT count(*) FROM projects;

-- name: create_api_key
-- Store a new key's prefix and hash.
INSERT INTO api_keys (project_id, prefix, key_hash, name)
VALUES (%(project_id)s, %(prefix)s, %(key_hash)s, %(name)s)
RETURNING id, project_id, prefix, name, created_at, last_used_at, revoked_at;

-- name: find_api_key
-- The live key with this prefix, to check its hash.
SELECT id, project_id, key_hash FROM api_keys WHERE prefix = %(prefix)s AND revoked_at IS NULL;

-- name: touch_api_key
-- Note that a key was used (at most once a minute, to keep writes rare).
UPDATE api_keys SET last_used_at = now()
WHERE id = %(id)s AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: get_project_by_name
-- One project by its (unique) name.
SELECT id, name, concurrency_limit, allow_network, on_failure_flow, created_at FROM projects
WHERE name = %(name)s;

-- name: list_projects
-- A page of projects by id, after the cursor's id.
SELECT id, name, concurrency_limit, allow_network, on_failure_flow, created_at FROM projects
WHERE id > %(after)s
ORDER BY id
LIMIT %(limit)s;

-- name: list_api_keys
-- A project's keys, revoked ones too (the newest first); never their hashes.
SELECT id, project_id, prefix, name, created_at, last_used_at, revoked_at FROM api_keys
WHERE project_id = %(project_id)s
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: revoke_api_key
-- Revoke the key with this prefix (a key revoked already keeps its time); the key, or no row.
-- authenticate reads revoked_at on every request, so the key is refused from this commit on.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE prefix = %(prefix)s
RETURNING id, project_id, prefix, name, created_at, last_used_at, revoked_at;
