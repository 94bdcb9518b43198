"""Alembic's entry point: migrate on the connection, inside the transaction, that
:func:`doclane.jobs.migrations.upgrade` opened and locked."""

from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():  # the caller's transaction: nothing is committed here
    context.run_migrations()
