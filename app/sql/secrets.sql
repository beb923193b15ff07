-- name: put_secret
-- Set a secret (encrypted by the caller); whether it was new.
INSERT INTO secrets (project_id, name, key_id, ciphertext)
VALUES (%(project_id)s, %(name)s, %(key_id)s, %(ciphertext)s)
ON CONFLICT (project_id, name) DO UPDATE
SET key_id = EXCLUDED.key_id, ciphertext = EXCLUDED.ciphertext, updated_at = now()
RETURNING name, created_at, updated_at, (xmax = 0) AS created;

-- name: list_secrets
-- A project's secrets by name: never their values.
SELECT name, created_at, updated_at FROM secrets
WHERE project_id = %(project_id)s ORDER BY name;

-- name: delete_secret
-- Remove a secret; its name if it existed.
DELETE FROM secrets WHERE project_id = %(project_id)s AND name = %(name)s RETURNING name;

-- name: secret_names
-- Which of these names are secrets of the project.
SELECT name FROM secrets
WHERE project_id = %(project_id)s AND name = ANY (%(names)s::text[]);

-- name: secret_values
-- These secrets of the project, encrypted, for a run that uses them.
SELECT name, key_id, ciphertext FROM secrets
WHERE project_id = %(project_id)s AND name = ANY (%(names)s::text[]);

-- name: secrets_to_rotate
-- A batch of secrets under another key than the newest, locked for re-encryption.
SELECT project_id, name, key_id, ciphertext FROM secrets
WHERE key_id <> %(newest)s
ORDER BY project_id, name
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: rotate_secret
-- Store a secret re-encrypted under the newest key (its value is unchanged: no updated_at).
UPDATE secrets SET key_id = %(key_id)s, ciphertext = %(ciphertext)s
WHERE project_id = %(project_id)s AND name = %(name)s;

-- name: count_secrets_by_key
-- How many secrets each key holds.
SELECT key_id, count(*) FROM secrets GROUP BY key_id ORDER BY key_id;

-- name: put_var
-- Set a var; whether it was new.
INSERT INTO vars (project_id, name, value)
VALUES (%(project_id)s, %(name)s, %(value)s)
ON CONFLICT (project_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
RETURNING name, value, created_at, updated_at, (xmax = 0) AS created;

-- name: list_vars
-- A project's vars with their values, by name.
SELECT name, value, created_at, updated_at FROM vars
WHERE project_id = %(project_id)s ORDER BY name;

-- name: get_var
-- One var of the project.
SELECT name, value, created_at, updated_at FROM vars
WHERE project_id = %(project_id)s AND name = %(name)s;

-- name: delete_var
-- Remove a var; its name if it existed.
DELETE FROM vars WHERE project_id = %(project_id)s AND name = %(name)s RETURNING name;

-- name: var_values
-- These vars of the project (all of them when names is NULL), for a run.
SELECT name, value FROM vars
WHERE project_id = %(project_id)s
  AND (%(names)s::text[] IS NULL OR name = ANY (%(names)s::text[]));

-- name: var_names
-- Which of these names are vars of the project.
SELECT name FROM vars
WHERE project_id = %(project_id)s AND name = ANY (%(names)s::text[]);

-- name: flow_definitions
-- The live definition of each live flow of the project (which flows use a secret).
SELECT l.name, v.definition
FROM sluice_live_flows l
JOIN flow_versions v ON v.id = l.version_id
WHERE l.project_id = %(project_id)s
ORDER BY l.name;
