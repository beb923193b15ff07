-- name: lock_flow
-- The live flow of this name, locked for a deploy (versions are numbered under this lock).
SELECT id FROM flows
WHERE project_id = %(project_id)s AND name = %(name)s AND deleted_at IS NULL
FOR UPDATE;

-- name: create_flow
-- A new flow; a concurrent creator of the same name loses on the unique index.
INSERT INTO flows (project_id, name) VALUES (%(project_id)s, %(name)s)
ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING
RETURNING id;

-- name: latest_version
-- A flow's newest version number, and its live version (what new runs start with: the
-- newest unless a rollback chose another) with that version's hash; NULLs for a new flow.
SELECT n.version AS newest, l.version AS live, l.content_hash
FROM flows f
CROSS JOIN LATERAL (SELECT max(version) AS version FROM flow_versions WHERE flow_id = f.id) n
LEFT JOIN flow_versions l ON l.flow_id = f.id AND l.version = coalesce(f.live_version, n.version)
WHERE f.id = %(flow_id)s;

-- name: add_version
-- Record a new immutable version, made live: a rollback's choice ends with the next deploy.
WITH added AS (
    INSERT INTO flow_versions (flow_id, version, definition, content_hash, created_by)
    VALUES (%(flow_id)s, %(version)s, %(definition)s, %(content_hash)s, %(created_by)s)
    RETURNING flow_id
)
UPDATE flows SET live_version = NULL
FROM added WHERE flows.id = added.flow_id AND flows.live_version IS NOT NULL;

-- name: get_flow
-- A live flow of the project with its live version (the newest, unless rolled back).
SELECT f.id, f.name, f.enabled, f.created_at, v.version, v.definition, v.created_at
FROM flows f
JOIN LATERAL (
    SELECT version, definition, created_at FROM flow_versions
    WHERE flow_id = f.id AND (f.live_version IS NULL OR version = f.live_version)
    ORDER BY version DESC LIMIT 1
) v ON true
WHERE f.project_id = %(project_id)s AND f.name = %(name)s AND f.deleted_at IS NULL;

-- name: live_flow_names
-- Which of these names are live flows of the project (a deploy warns of calls to others).
SELECT name FROM flows
WHERE project_id = %(project_id)s AND name = ANY (%(names)s::text[]) AND deleted_at IS NULL;

-- name: list_flows
-- The project's live flows with their live version numbers, by name.
SELECT f.id, f.name, f.enabled, f.created_at,
       coalesce(f.live_version, (SELECT max(version) FROM flow_versions WHERE flow_id = f.id))
         AS version
FROM flows f
WHERE f.project_id = %(project_id)s AND f.deleted_at IS NULL
ORDER BY f.name;

-- name: set_enabled
-- Enable or disable a live flow (a disabled flow's webhooks answer 404).
UPDATE flows SET enabled = %(enabled)s
WHERE project_id = %(project_id)s AND name = %(name)s AND deleted_at IS NULL
RETURNING id;

-- name: delete_flow
-- Hide a flow; its versions stay for the runs that pinned them.
UPDATE flows SET deleted_at = now(), enabled = false
WHERE project_id = %(project_id)s AND name = %(name)s AND deleted_at IS NULL
RETURNING id;
