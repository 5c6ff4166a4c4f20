"""human approvals: held requests, their gates, approver groups

Revision ID: 0002_approvals
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_approvals"
down_revision = "0002_fleet"

_ID = sa.String(length=36)
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", _ID, nullable=False),
        sa.Column("app_id", _ID, nullable=False),
        sa.Column("grant_id", _ID, nullable=False),
        sa.Column("key_id", _ID, nullable=True),
        sa.Column("caller", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("eligible", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("result_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("upstream_status", sa.Integer(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("execution_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("claimed_at", _TS, nullable=True),
        sa.Column("executed_at", _TS, nullable=True),
        sa.Column("result_expires_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_approval_requests_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.id"],
            name=op.f("fk_approval_requests_grant_id_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_requests")),
    )
    with op.batch_alter_table("approval_requests", schema=None) as batch_op:
        batch_op.create_index("ix_approval_requests_status", ["status"], unique=False)
        batch_op.create_index("ix_approval_requests_grant_id", ["grant_id"], unique=False)

    op.create_table(
        "approval_gates",
        sa.Column("id", _ID, nullable=False),
        sa.Column("request_id", _ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("approver", sa.String(length=320), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["approval_requests.id"],
            name=op.f("fk_approval_gates_request_id_approval_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_gates")),
        sa.UniqueConstraint("request_id", "approver", name="uq_approval_gates_request_approver"),
    )
    with op.batch_alter_table("approval_gates", schema=None) as batch_op:
        batch_op.create_index("ix_approval_gates_request_id", ["request_id"], unique=False)

    op.create_table(
        "approver_groups",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("name", "email", name=op.f("pk_approver_groups")),
    )


def downgrade() -> None:
    op.drop_table("approver_groups")
    op.drop_table("approval_gates")
    op.drop_table("approval_requests")
