"""outbox: a lease per row, backoff, capped attempts and dead letters

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 05:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'status',
                sa.Enum('pending', 'completed', 'dead', name='outboxstatus', native_enum=False, length=16),
                nullable=False,
                server_default='pending',
            )
        )
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_status'), ['status'], unique=False)
    op.execute("UPDATE outbox SET status = 'completed' WHERE completed_at IS NOT NULL")


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_status'))
        batch_op.drop_column('dead_at')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('status')
