"""Alembic migrations; `modelql migrate` applies them."""
