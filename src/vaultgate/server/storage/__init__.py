"""The database: one schema (SQLite or PostgreSQL), its Alembic migrations, and the engine.

It stores only sealed secret material; it never sees a plaintext credential or API key.
"""
