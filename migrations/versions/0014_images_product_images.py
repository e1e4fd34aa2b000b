"""catalog: product images (keys and sizes of each stored width, gallery order, alt text)

Revision ID: 0014_images_product_images
Revises: 0013_saga_void_refusals
Create Date: 2026-12-02 14:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_images_product_images'
down_revision = '0013_saga_void_refusals'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'product_images',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('alt_text', sa.String(length=200), nullable=False),
        sa.Column('content_type', sa.String(length=32), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('keys', sa.JSON(), nullable=False),
        sa.Column('sizes', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('position >= 0', name=op.f('ck_product_images_position_non_negative')),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_images_product_id_products')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_product_images')),
    )
    with op.batch_alter_table('product_images') as batch_op:
        batch_op.create_index(batch_op.f('ix_product_images_product_id'), ['product_id'], unique=False)


def downgrade():
    with op.batch_alter_table('product_images') as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_images_product_id'))
    op.drop_table('product_images')
