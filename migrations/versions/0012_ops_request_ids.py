"""request ids: the checkout request an order came from, the request that wrote an outbox row

Revision ID: 0012_ops_request_ids
Revises: 0011
Create Date: 2026-12-02 08:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_ops_request_ids'
down_revision = '0012_accounts_self_service'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('request_id')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('request_id')
