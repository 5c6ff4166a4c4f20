"""managed agents and their keys (the official client's app.agents); a per-key request rate

Revision ID: 0003_agents
Revises: 0002_key_scopes
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_agents"
down_revision = "0003_fleet_keys"


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_agents_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_index("ix_agents_app_id", "agents", ["app_id"], unique=False)
    op.create_table(
        "agent_keys",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("agent_id", sa.String(length=36), nullable=False),
        sa.Column("deprecated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_agent_keys_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_keys_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_agent_keys")),
    )
    op.create_index("ix_agent_keys_agent_id", "agent_keys", ["agent_id"], unique=False)
    with op.batch_alter_table("key_controls") as batch:
        batch.add_column(sa.Column("rate_limit_rpm", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_controls") as batch:
        batch.drop_column("rate_limit_rpm")
    op.drop_index("ix_agent_keys_agent_id", table_name="agent_keys")
    op.drop_table("agent_keys")
    op.drop_index("ix_agents_app_id", table_name="agents")
    op.drop_table("agents")
