"""A flow's webhook trigger, whole: how its requests are verified, and whether it has one.

``sluice_live_flows`` gave the webhook's ``secret`` alone (``trigger ->> 'secret'``). A flow
may now have several triggers (a list: a webhook and schedules) and a webhook names its
verification (``verify``: github, stripe, slack, standard, hmac-sha256, bearer, basic,
none). The view now gives ``webhook``, the webhook trigger's object (NULL when the flow
has none, e.g. only a schedule: its webhook URLs answer 404), and ``open``, true when that
webhook verifies nothing, so the one-statement start (``start_webhook_run``) applies only
to those.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_LATEST = """
FROM flows f
JOIN LATERAL (
    SELECT id, version, definition FROM flow_versions
    WHERE flow_id = f.id ORDER BY version DESC LIMIT 1
) v ON true
"""

UPGRADE = rf"""
DROP VIEW sluice_live_flows;
CREATE VIEW sluice_live_flows AS
SELECT f.id AS flow_id, f.project_id, f.name, f.enabled, v.id AS version_id, v.version,
       w.webhook,
       w.webhook IS NOT NULL AND coalesce(
           w.webhook ->> 'verify',
           CASE WHEN w.webhook ->> 'secret' IS NULL THEN 'none' ELSE 'hmac-sha256' END
       ) = 'none' AS open
{_LATEST}
CROSS JOIN LATERAL (
    SELECT CASE jsonb_typeof(v.definition -> 'trigger')
        WHEN 'array' THEN (
            SELECT t FROM jsonb_array_elements(v.definition -> 'trigger') t
            WHERE t ->> 'type' = 'webhook' LIMIT 1)
        WHEN 'object' THEN CASE
            WHEN coalesce(v.definition -> 'trigger' ->> 'type', 'webhook') = 'webhook'
            THEN v.definition -> 'trigger' END
        ELSE '{{}}'::jsonb
    END AS webhook
) w
WHERE f.deleted_at IS NULL;
"""

DOWNGRADE = rf"""
DROP VIEW sluice_live_flows;
CREATE VIEW sluice_live_flows AS
SELECT f.id AS flow_id, f.project_id, f.name, f.enabled, v.id AS version_id, v.version,
       v.definition -> 'trigger' ->> 'secret' AS secret
{_LATEST}
WHERE f.deleted_at IS NULL;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
