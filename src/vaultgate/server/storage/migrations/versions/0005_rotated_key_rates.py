"""rotated key rates: a key's successor spends the bucket the key had, not a fresh one

Revision ID: 0005_rotated_key_rates
Revises: 0004_key_rates
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_rotated_key_rates"
down_revision = "0004_key_rates"


def upgrade() -> None:
    with op.batch_alter_table("key_controls") as batch:
        batch.add_column(sa.Column("rate_key_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_controls") as batch:
        batch.drop_column("rate_key_id")
