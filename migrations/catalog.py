"""The schema of a database as the catalogs describe it, to compare two databases.

Two databases on the same server have the same schema exactly when their descriptions are
equal: every table with its columns (type, default, nullability, identity) and storage
options, every constraint, index, view, function (trigger functions included), trigger and
enum type of the ``public`` schema, each deparsed by the server itself. The migrations'
bookkeeping table (``alembic_version``) is left out.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

IGNORED_TABLES = ("alembic_version",)

_QUERIES = {
    "columns": """
        SELECT c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null'
               ELSE '' END || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
               || CASE a.attidentity WHEN 'a' THEN ' identity always'
                                     WHEN 'd' THEN ' identity by default' ELSE '' END
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p') AND a.attnum > 0
          AND NOT a.attisdropped AND c.relname <> ALL (%(ignored)s)
    """,
    "table options": """
        SELECT c.relname, array_to_string(c.reloptions, ', ')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> ALL (%(ignored)s)
    """,
    "constraints": """
        SELECT conrelid::regclass || ' ' || conname, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace
          AND conrelid::regclass::text <> ALL (%(ignored)s)
    """,
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> ALL (%(ignored)s)
    """,
    "views": """
        SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'
    """,
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
        FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
    """,
    "triggers": """
        SELECT t.tgrelid::regclass || ' ' || t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
    """,
    "types": """
        SELECT t.typname, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE t.typnamespace = 'public'::regnamespace
        GROUP BY t.typname
    """,
}


def describe(conn: Connection[Any]) -> dict[str, dict[str, str]]:
    """Each kind of schema object, by name, with its definition as the server deparses it."""
    described: dict[str, dict[str, str]] = {}
    for kind, query in _QUERIES.items():
        rows = conn.execute(query, {"ignored": list(IGNORED_TABLES)}).fetchall()
        described[kind] = {str(name): str(definition) for name, definition in rows}
    return described
