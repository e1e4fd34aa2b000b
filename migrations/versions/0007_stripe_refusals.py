"""payments: Stripe's capture deadline; refunds: why Stripe refused a refund or its reversal

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payments') as batch_op:
        batch_op.add_column(sa.Column('capture_before', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
    with op.batch_alter_table('refunds') as batch_op:
        batch_op.add_column(sa.Column('failure_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('reversal_failure_reason', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('refunds') as batch_op:
        batch_op.drop_column('reversal_failure_reason')
        batch_op.drop_column('failure_reason')
    with op.batch_alter_table('payments') as batch_op:
        batch_op.drop_column('last_error')
        batch_op.drop_column('capture_before')
