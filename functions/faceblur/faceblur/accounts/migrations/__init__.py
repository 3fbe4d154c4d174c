"""Alembic migrations of the accounts database, run by `faceblur.accounts.upgrade`."""
