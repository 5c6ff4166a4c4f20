"""OAuth token state (one row per OAuth secret), and room for the OAuth credential type names

Revision ID: 0003_oauth
Revises: 0002_key_scopes
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_oauth"
down_revision = "0003_sinks"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        # "oauth2_client_credentials" is 25 characters; SQLite does not enforce the length.
        op.alter_column(
            "secrets",
            "credential_type",
            existing_type=sa.String(length=16),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
    op.create_table(
        "oauth_tokens",
        sa.Column("secret_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("master_key_id", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("refresh_at", sa.Float(), nullable=True),
        sa.Column("retry_at", sa.Float(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_oauth_tokens_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", name=op.f("pk_oauth_tokens")),
    )


def downgrade() -> None:
    op.drop_table("oauth_tokens")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "secrets",
            "credential_type",
            existing_type=sa.String(length=32),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
