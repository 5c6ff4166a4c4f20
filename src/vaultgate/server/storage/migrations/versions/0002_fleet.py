"""fleet: shared replay nonces, rate-limit hits and the change counter

Revision ID: 0002_fleet
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_fleet"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "sdk_nonces",
        sa.Column("nonce", sa.String(length=200), nullable=False),
        sa.Column("seen_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_sdk_nonces")),
    )
    op.create_index("ix_sdk_nonces_seen_at", "sdk_nonces", ["seen_at"])
    op.create_table(
        "rate_hits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_hits")),
    )
    op.create_index("ix_rate_hits_grant_id_at", "rate_hits", ["grant_id", "at"])
    op.create_index("ix_rate_hits_at", "rate_hits", ["at"])
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.bulk_insert(meta, [{"key": "changes", "value": "0"}])


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'changes'")
    op.drop_table("rate_hits")
    op.drop_table("sdk_nonces")
