"""key rates: a limited key's request rate counted in the database, shared by the fleet

Revision ID: 0004_key_rates
Revises: 0003_connect
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_key_rates"
down_revision = "0003_connect"


def upgrade() -> None:
    with op.batch_alter_table("key_controls") as batch:
        batch.add_column(sa.Column("rate_tat", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_controls") as batch:
        batch.drop_column("rate_tat")
