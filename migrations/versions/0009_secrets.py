"""Per-project secrets and vars, and whether a project's code steps may use the network.

* ``secrets``: a project's named values, stored only encrypted (Fernet, under the key of
  SLUICE_SECRETS_KEY that ``key_id`` names, so ``sluice secrets rotate`` can find what is
  left under an old key). Nothing in the database holds a secret in the clear.
* ``vars``: a project's named plain configuration values (readable through the API).
* ``projects.allow_network``: an administrator may forbid network to a project's code
  steps, whatever its flows ask for.

Names are what a template writes after ``secrets.`` or ``vars.``: an identifier.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_NAME = r"name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE secrets (
            project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            name text NOT NULL CHECK ({_NAME}),
            key_id text NOT NULL,
            ciphertext bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (project_id, name)
        )
        """
    )
    op.execute("CREATE INDEX secrets_by_key ON secrets (key_id)")
    op.execute(
        f"""
        CREATE TABLE vars (
            project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            name text NOT NULL CHECK ({_NAME}),
            value text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (project_id, name)
        )
        """
    )
    op.execute("ALTER TABLE projects ADD COLUMN allow_network boolean NOT NULL DEFAULT true")


def downgrade() -> None:
    op.execute("ALTER TABLE projects DROP COLUMN allow_network")
    op.execute("DROP TABLE vars")
    op.execute("DROP TABLE secrets")
