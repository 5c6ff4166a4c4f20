"""fleet keys: one heartbeat row per node, naming the master keys it holds

Revision ID: 0003_fleet_keys
Revises: 0002_key_scopes
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_fleet_keys"
down_revision = "0002_key_scopes"


def upgrade() -> None:
    op.create_table(
        "fleet_nodes",
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("key_ids", sa.JSON(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_fleet_nodes")),
    )


def downgrade() -> None:
    op.drop_table("fleet_nodes")
