"""captures: each capture of a payment is its own intent row (requested -> succeeded | failed)

The payment kept the amount of the capture in flight (`capture_amount_cents`) and nothing of a
refused one. Existing captured payments get a `succeeded` capture, payments `capturing` a
`requested` one carrying the amount they were asked with; the column goes.

Revision ID: 0017_saga2_capture_reversal
Revises: 0016_backoffice_audit_log
Create Date: 2026-12-02 14:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017_saga2_capture_reversal'
down_revision = '0016_backoffice_audit_log'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'captures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('payment_id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('amount_cents', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column(
            'status',
            sa.Enum('requested', 'succeeded', 'failed', name='capturestatus', native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column('amount_captured_cents', sa.Integer(), nullable=True),
        sa.Column('charge_id', sa.String(length=64), nullable=True),
        sa.Column('failure_reason', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('amount_cents > 0', name=op.f('ck_captures_amount_positive')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_captures_order_id_orders')),
        sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_captures_payment_id_payments')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_captures')),
    )
    op.create_index(op.f('ix_captures_order_id'), 'captures', ['order_id'], unique=False)
    op.create_index(op.f('ix_captures_payment_id'), 'captures', ['payment_id'], unique=False)
    op.create_index(
        'ix_captures_one_requested',
        'captures',
        ['payment_id'],
        unique=True,
        sqlite_where=sa.text("status = 'requested'"),
        postgresql_where=sa.text("status = 'requested'"),
    )
    op.execute(
        "INSERT INTO captures (payment_id, order_id, amount_cents, currency, status,"
        " amount_captured_cents, charge_id, created_at, answered_at)"
        " SELECT id, order_id, amount_captured_cents, currency, 'succeeded',"
        " amount_captured_cents, charge_id, COALESCE(captured_at, created_at), captured_at"
        " FROM payments WHERE status = 'captured' AND amount_captured_cents > 0"
    )
    op.execute(
        "INSERT INTO captures (payment_id, order_id, amount_cents, currency, status, created_at)"
        " SELECT id, order_id, capture_amount_cents, currency, 'requested', created_at"
        " FROM payments WHERE status = 'capturing' AND capture_amount_cents > 0"
    )
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite's own DROP COLUMN (3.35+): a batch copy would drop and recreate `payments`,
        # which fails with foreign keys on once captures and disputes point at its rows
        op.execute('ALTER TABLE payments DROP COLUMN capture_amount_cents')
    else:
        op.drop_column('payments', 'capture_amount_cents')


def downgrade():
    with op.batch_alter_table('payments') as batch_op:
        batch_op.add_column(sa.Column('capture_amount_cents', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE payments SET capture_amount_cents = (SELECT captures.amount_cents FROM captures"
        " WHERE captures.payment_id = payments.id AND captures.status = 'requested')"
    )
    op.drop_index('ix_captures_one_requested', table_name='captures')
    op.drop_index(op.f('ix_captures_payment_id'), table_name='captures')
    op.drop_index(op.f('ix_captures_order_id'), table_name='captures')
    op.drop_table('captures')
