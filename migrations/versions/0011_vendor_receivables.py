"""vendor receivables (refused reversals), what each transfer held back, why one was refused

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 06:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'vendor_receivables',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('vendor_id', sa.Integer(), nullable=False),
        sa.Column('refund_id', sa.Integer(), nullable=False),
        sa.Column('amount_cents', sa.Integer(), nullable=False),
        sa.Column('settled_cents', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('amount_cents > 0', name=op.f('ck_vendor_receivables_amount_positive')),
        sa.CheckConstraint(
            'settled_cents >= 0 AND settled_cents <= amount_cents',
            name=op.f('ck_vendor_receivables_settled_within_amount'),
        ),
        sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_vendor_receivables_refund_id_refunds')),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'], name=op.f('fk_vendor_receivables_vendor_id_vendors')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vendor_receivables')),
        sa.UniqueConstraint('refund_id', name=op.f('uq_vendor_receivables_refund_id')),
    )
    op.create_index(op.f('ix_vendor_receivables_vendor_id'), 'vendor_receivables', ['vendor_id'], unique=False)
    with op.batch_alter_table('transfers') as batch_op:
        batch_op.add_column(sa.Column('netted_cents', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('failure_reason', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('transfers') as batch_op:
        batch_op.drop_column('failure_reason')
        batch_op.drop_column('netted_cents')
    op.drop_index(op.f('ix_vendor_receivables_vendor_id'), table_name='vendor_receivables')
    op.drop_table('vendor_receivables')
