"""Versions a person can reach: which key deployed each one, and a rollback.

* ``flow_versions.created_by``: the prefix of the API key that deployed the version
  (``sk_<prefix>``; NULL for versions deployed before this revision).
* ``flows.live_version``: the version new runs start with, when a rollback chose one; NULL
  means the newest. ``sluice_live_flows`` (the only definition of "the version new runs
  start with": webhooks, schedules, call_flow, replays on the latest version) honours it. A
  rollback sets it and adds no version; the next deploy clears it, so what was deployed
  last is live again. History is never rewritten: runs keep the versions they pinned.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None

_VIEW = r"""
CREATE VIEW sluice_live_flows AS
SELECT f.id AS flow_id, f.project_id, f.name, f.enabled, v.id AS version_id, v.version,
       w.webhook,
       w.webhook IS NOT NULL AND coalesce(
           w.webhook ->> 'verify',
           CASE WHEN w.webhook ->> 'secret' IS NULL THEN 'none' ELSE 'hmac-sha256' END
       ) = 'none' AS open
FROM flows f
JOIN LATERAL (
    SELECT id, version, definition FROM flow_versions
    WHERE flow_id = f.id ORDER BY version DESC LIMIT 1
) v ON true
CROSS JOIN LATERAL (
    SELECT CASE jsonb_typeof(v.definition -> 'trigger')
        WHEN 'array' THEN (
            SELECT t FROM jsonb_array_elements(v.definition -> 'trigger') t
            WHERE t ->> 'type' = 'webhook' LIMIT 1)
        WHEN 'object' THEN CASE
            WHEN coalesce(v.definition -> 'trigger' ->> 'type', 'webhook') = 'webhook'
            THEN v.definition -> 'trigger' END
        ELSE '{}'::jsonb
    END AS webhook
) w
WHERE f.deleted_at IS NULL;
"""

UPGRADE = """
ALTER TABLE flow_versions ADD COLUMN created_by text;
ALTER TABLE flows ADD COLUMN live_version integer CHECK (live_version >= 1);
DROP VIEW sluice_live_flows;
""" + _VIEW.replace(
    "WHERE flow_id = f.id ORDER BY version DESC LIMIT 1",
    "WHERE flow_id = f.id AND (f.live_version IS NULL OR version = f.live_version)\n"
    "    ORDER BY version DESC LIMIT 1",
)

DOWNGRADE = (
    """
DROP VIEW sluice_live_flows;
"""
    + _VIEW
    + """
ALTER TABLE flows DROP COLUMN live_version;
ALTER TABLE flow_versions DROP COLUMN created_by;
"""
)


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
