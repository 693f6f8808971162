"""The store: one schema on SQLite (the default) or PostgreSQL."""
