"""Alembic environment: `faceblur.accounts.upgrade` hands over the connection to use."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
