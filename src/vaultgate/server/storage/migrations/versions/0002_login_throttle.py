"""sign-in attempts counted in the database, shared by every worker and node

Revision ID: 0002_login_throttle
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_login_throttle"
down_revision = "0002_approvals"


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_index(
        "ix_login_throttle_window_start", "login_throttle", ["window_start"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_login_throttle_window_start", table_name="login_throttle")
    op.drop_table("login_throttle")
