"""scoped-key controls (the official client's keys.derive / rotate / revoke)

Revision ID: 0002_key_scopes
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_key_scopes"
down_revision = "0002_login_throttle"


def upgrade() -> None:
    op.create_table(
        "key_controls",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("parent_key_id", sa.String(length=36), nullable=True),
        sa.Column("key_type", sa.String(length=4), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("cidr_allowlist", sa.JSON(), nullable=True),
        sa.Column("deprecated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_key_controls_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_key_id"],
            ["api_keys.id"],
            name=op.f("fk_key_controls_parent_key_id_api_keys"),
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_key_controls")),
    )
    op.create_index(
        "ix_key_controls_parent_key_id", "key_controls", ["parent_key_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_key_controls_parent_key_id", table_name="key_controls")
    op.drop_table("key_controls")
