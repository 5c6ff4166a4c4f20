"""budgets: a grant's spend per budget window

Revision ID: 0003_budgets
Revises: 0002_key_scopes
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_budgets"
down_revision = "0003_agents"


def upgrade() -> None:
    op.create_table(
        "budget_usage",
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tokens_in", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("usd_nanos", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("grant_id", "period", "window_start", name=op.f("pk_budget_usage")),
    )


def downgrade() -> None:
    op.drop_table("budget_usage")
