"""Alembic environment: always run against the connection handed in by ``engine.migrate``."""

from alembic import context

from vaultgate.server.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
