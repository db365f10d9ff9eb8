"""The city's records: staff accounts and roles, the audit log, and the history of alerts and
campaigns with their approval workflow, in a relational database (SQLAlchemy, Alembic)."""
