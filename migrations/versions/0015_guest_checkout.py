"""users: guest buyers (checkout with an email), email unique among real accounts only

Revision ID: 0015_guest_checkout
Revises: 0014_images_product_images
Create Date: 2026-12-02 14:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015_guest_checkout'
down_revision = '0014_images_product_images'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(
            sa.Column('is_guest', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.drop_constraint('uq_users_email', type_='unique')
    op.create_index(
        'uq_users_email_account',
        'users',
        ['email'],
        unique=True,
        postgresql_where=sa.text('NOT is_guest'),
        sqlite_where=sa.text('NOT is_guest'),
    )
    op.create_index('ix_users_email', 'users', ['email'])


def downgrade():
    op.drop_index('ix_users_email', table_name='users')
    op.drop_index('uq_users_email_account', table_name='users')
    guests = op.get_bind().execute(sa.text("SELECT count(*) FROM users WHERE is_guest")).scalar()
    if guests:
        # Their orders point at them, and their emails may repeat a real account's.
        raise RuntimeError(f"{guests} guest buyers exist: cannot restore a unique email")
    with op.batch_alter_table('users') as batch_op:
        batch_op.create_unique_constraint('uq_users_email', ['email'])
        batch_op.drop_column('is_guest')
