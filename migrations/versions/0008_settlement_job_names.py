"""outbox: the saga's jobs moved to marketplace.settlement.jobs; rows not run yet follow them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

MOVED = {
    'marketplace.payments.jobs.capture_order': 'marketplace.settlement.jobs.capture_order',
    'marketplace.payments.jobs.void_payment': 'marketplace.settlement.jobs.void_payment',
    'marketplace.payments.jobs.settle_cancellation':
        'marketplace.settlement.jobs.settle_cancellation',
    'marketplace.payouts.jobs.transfer_vendor_order':
        'marketplace.settlement.jobs.transfer_vendor_order',
    'marketplace.payouts.jobs.execute_refund': 'marketplace.settlement.jobs.execute_refund',
}

outbox = sa.table('outbox', sa.column('job', sa.String))


def _rename(pairs):
    for old, new in pairs:
        op.execute(outbox.update().where(outbox.c.job == old).values(job=new))


def upgrade():
    _rename(MOVED.items())


def downgrade():
    _rename((new, old) for old, new in MOVED.items())
