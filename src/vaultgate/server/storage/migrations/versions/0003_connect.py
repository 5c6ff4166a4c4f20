"""OAuth apps, Connect sessions and connected accounts

Revision ID: 0003_connect
Revises: 0003_oauth
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_connect"
down_revision = "0003_oauth"


def upgrade() -> None:
    # (secrets.credential_type was widened for the OAuth type names by 0003_oauth.)
    op.create_table(
        "oauth_apps",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=512), nullable=False),
        sa.Column("client_secret", sa.LargeBinary(), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_oauth_apps_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_apps")),
        sa.UniqueConstraint("app_id", "provider", name="uq_oauth_apps_app_id_provider"),
    )
    op.create_table(
        "connect_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("link_hash", sa.String(length=64), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=True),
        sa.Column("verifier", sa.LargeBinary(), nullable=True),
        sa.Column("providers", sa.JSON(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("app_user_id", sa.String(length=255), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=True),
        sa.Column("return_url", sa.String(length=2048), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_connect_sessions_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connect_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_connect_sessions_token_hash")),
        sa.UniqueConstraint("link_hash", name=op.f("uq_connect_sessions_link_hash")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_connect_sessions_state_hash")),
    )
    op.create_table(
        "oauth_connections",
        sa.Column("secret_id", sa.String(length=36), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("app_user_id", sa.String(length=255), nullable=True),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("account_login", sa.String(length=255), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_oauth_connections_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_oauth_connections_grant_id_grants")
        ),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_oauth_connections_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", name=op.f("pk_oauth_connections")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_oauth_connections_grant_id")),
    )
    op.create_index(
        "ix_oauth_connections_app_id_provider",
        "oauth_connections",
        ["app_id", "provider"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_oauth_connections_app_id_provider", table_name="oauth_connections")
    op.drop_table("oauth_connections")
    op.drop_table("connect_sessions")
    op.drop_table("oauth_apps")
