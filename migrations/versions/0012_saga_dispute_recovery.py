"""dispute recovery: the platform setting, the vendors' recovered shares, receivables from them

Revision ID: 0012_saga_dispute_recovery
Revises: 0011
Create Date: 2026-12-02 08:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_saga_dispute_recovery'
down_revision = '0012_ops_request_ids'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('platform_settings') as batch_op:
        batch_op.add_column(
            sa.Column(
                'dispute_recovery',
                sa.String(length=32),
                nullable=False,
                server_default='platform_absorbs',
            )
        )
        batch_op.create_check_constraint(
            'dispute_recovery_known',
            "dispute_recovery IN ('platform_absorbs', 'reverse_vendor_share')",
        )
    op.create_table(
        'dispute_recoveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dispute_id', sa.Integer(), nullable=False),
        sa.Column('vendor_order_id', sa.Integer(), nullable=False),
        sa.Column('vendor_id', sa.Integer(), nullable=False),
        sa.Column('transfer_id', sa.Integer(), nullable=True),
        sa.Column('amount_cents', sa.Integer(), nullable=False),
        sa.Column('return_cents', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('status', sa.Enum('pending', 'reversed', 'owed', 'canceled', 'returning', 'returned', 'waived', name='recoverystatus', native_enum=False, length=16), nullable=False),
        sa.Column('stripe_reversal_id', sa.String(length=64), nullable=True),
        sa.Column('stripe_return_transfer_id', sa.String(length=64), nullable=True),
        sa.Column('failure_reason', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('amount_cents > 0', name=op.f('ck_dispute_recoveries_amount_positive')),
        sa.CheckConstraint(
            'return_cents >= 0 AND return_cents <= amount_cents',
            name=op.f('ck_dispute_recoveries_return_within_amount'),
        ),
        sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_dispute_recoveries_dispute_id_disputes')),
        sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_dispute_recoveries_transfer_id_transfers')),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'], name=op.f('fk_dispute_recoveries_vendor_id_vendors')),
        sa.ForeignKeyConstraint(['vendor_order_id'], ['vendor_orders.id'], name=op.f('fk_dispute_recoveries_vendor_order_id_vendor_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dispute_recoveries')),
        sa.UniqueConstraint('stripe_reversal_id', name=op.f('uq_dispute_recoveries_stripe_reversal_id')),
        sa.UniqueConstraint('stripe_return_transfer_id', name=op.f('uq_dispute_recoveries_stripe_return_transfer_id')),
    )
    op.create_index(op.f('ix_dispute_recoveries_dispute_id'), 'dispute_recoveries', ['dispute_id'], unique=False)
    op.create_index(op.f('ix_dispute_recoveries_vendor_id'), 'dispute_recoveries', ['vendor_id'], unique=False)
    op.create_index(op.f('ix_dispute_recoveries_vendor_order_id'), 'dispute_recoveries', ['vendor_order_id'], unique=False)
    with op.batch_alter_table('vendor_receivables') as batch_op:
        batch_op.alter_column('refund_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('dispute_recovery_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f('fk_vendor_receivables_dispute_recovery_id_dispute_recoveries'),
            'dispute_recoveries',
            ['dispute_recovery_id'],
            ['id'],
        )
        batch_op.create_unique_constraint(
            op.f('uq_vendor_receivables_dispute_recovery_id'), ['dispute_recovery_id']
        )


def downgrade():
    op.execute('DELETE FROM vendor_receivables WHERE refund_id IS NULL')
    with op.batch_alter_table('vendor_receivables') as batch_op:
        batch_op.drop_constraint(op.f('uq_vendor_receivables_dispute_recovery_id'), type_='unique')
        batch_op.drop_constraint(
            op.f('fk_vendor_receivables_dispute_recovery_id_dispute_recoveries'), type_='foreignkey'
        )
        batch_op.drop_column('dispute_recovery_id')
        batch_op.alter_column('refund_id', existing_type=sa.Integer(), nullable=False)
    op.drop_index(op.f('ix_dispute_recoveries_vendor_order_id'), table_name='dispute_recoveries')
    op.drop_index(op.f('ix_dispute_recoveries_vendor_id'), table_name='dispute_recoveries')
    op.drop_index(op.f('ix_dispute_recoveries_dispute_id'), table_name='dispute_recoveries')
    op.drop_table('dispute_recoveries')
    with op.batch_alter_table('platform_settings') as batch_op:
        batch_op.drop_constraint('dispute_recovery_known', type_='check')
        batch_op.drop_column('dispute_recovery')
