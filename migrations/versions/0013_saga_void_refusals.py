"""payments: why a void was asked and when Stripe last refused it

Revision ID: 0013_saga_void_refusals
Revises: 0012_saga_dispute_recovery
Create Date: 2026-12-02 08:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_saga_void_refusals'
down_revision = '0012_saga_dispute_recovery'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payments') as batch_op:
        batch_op.add_column(sa.Column('void_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('void_refused_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('payments') as batch_op:
        batch_op.drop_column('void_refused_at')
        batch_op.drop_column('void_reason')
