"""Alembic's environment: run by bot.staff.db.Database.upgrade on the connection it passes."""

from alembic import context

from bot.staff.models import Base

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters tables by copying them; batch mode does that for it.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
