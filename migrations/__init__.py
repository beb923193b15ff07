"""Alembic migrations; the only package that uses SQLAlchemy (through alembic)."""
