-- name: list_versions
-- A live flow's versions, newest first, at most limit, before a version number; which one
-- is live (new runs start with it).
SELECT v.version, v.created_at, v.created_by, v.content_hash,
       v.version = coalesce(f.live_version, n.newest) AS live
FROM flows f
CROSS JOIN LATERAL (SELECT max(version) AS newest FROM flow_versions WHERE flow_id = f.id) n
JOIN flow_versions v ON v.flow_id = f.id
WHERE f.project_id = %(project_id)s AND f.name = %(name)s AND f.deleted_at IS NULL
  AND v.version < %(before)s
ORDER BY v.version DESC
LIMIT %(limit)s;

-- name: get_version
-- One version of a live flow, with its definition.
SELECT v.version, v.created_at, v.created_by, v.content_hash,
       v.version = coalesce(f.live_version, n.newest) AS live, v.definition
FROM flows f
CROSS JOIN LATERAL (SELECT max(version) AS newest FROM flow_versions WHERE flow_id = f.id) n
JOIN flow_versions v ON v.flow_id = f.id AND v.version = %(version)s
WHERE f.project_id = %(project_id)s AND f.name = %(name)s AND f.deleted_at IS NULL;

-- name: roll_back
-- Make an existing version of a live flow the one new runs start with (the newest: NULL,
-- as after a deploy). No row: no such flow or version.
UPDATE flows f
SET live_version = CASE WHEN v.version = n.newest THEN NULL ELSE v.version END
FROM flow_versions v,
     LATERAL (SELECT max(version) AS newest FROM flow_versions WHERE flow_id = v.flow_id) n
WHERE f.project_id = %(project_id)s AND f.name = %(name)s AND f.deleted_at IS NULL
  AND v.flow_id = f.id AND v.version = %(version)s
RETURNING f.id;
