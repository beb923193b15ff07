-- name: current_revision
-- The alembic revision the database is at (no row: never migrated).
SELECT version_num FROM alembic_version;
