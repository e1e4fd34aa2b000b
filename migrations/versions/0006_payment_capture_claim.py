"""payments: the amount a capture in flight was started with

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 12:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payments') as batch_op:
        batch_op.add_column(sa.Column('capture_amount_cents', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('payments') as batch_op:
        batch_op.drop_column('capture_amount_cents')
