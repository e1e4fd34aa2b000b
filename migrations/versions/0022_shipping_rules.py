"""shipping rules: a vendor's shipping terms, variant weights, the terms a cart line was added under

`vendors` keeps its flat rate (`shipping_flat_cents`, the fee per order, or for the first item)
and `free_shipping_threshold_cents`, and gains `shipping_mode` (flat_per_order | per_item |
weight_tiers), `shipping_additional_cents` (per item after the first), `shipping_weight_tiers`
([[up_to_grams, cents], ...]), `ships_to` (ISO countries served, [] = everywhere) and
`shipping_version`, bumped on every change. Existing vendors become flat_per_order at their
rate and threshold, version 1: nothing they charge changes.

`variants.weight_grams` (0 by default) weighs the weight tiers; `cart_items.shipping_terms_seen`
is the vendor's terms when the line was added (NULL for lines older than this: the current
terms are taken as seen).

Revision ID: 0022_shipping_rules
Revises: 0021_tax_categories_rates
Create Date: 2026-12-03 13:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0022_shipping_rules"
down_revision = "0021_tax_categories_rates"
branch_labels = None
depends_on = None


def upgrade():
    # ADD COLUMN with its CHECK is one statement both dialects take, so SQLite copies no table
    # other rows point at.
    op.execute(
        "ALTER TABLE vendors ADD COLUMN shipping_mode VARCHAR(16) DEFAULT 'flat_per_order'"
        " NOT NULL CONSTRAINT ck_vendors_shipping_mode_known"
        " CHECK (shipping_mode IN ('flat_per_order', 'per_item', 'weight_tiers'))"
    )
    op.execute(
        "ALTER TABLE vendors ADD COLUMN shipping_additional_cents INTEGER DEFAULT 0 NOT NULL"
        " CONSTRAINT ck_vendors_shipping_additional_non_negative"
        " CHECK (shipping_additional_cents >= 0)"
    )
    op.execute(
        "ALTER TABLE vendors ADD COLUMN shipping_version INTEGER DEFAULT 1 NOT NULL"
        " CONSTRAINT ck_vendors_shipping_version_positive CHECK (shipping_version >= 1)"
    )
    with op.batch_alter_table("vendors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("shipping_weight_tiers", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("ships_to", sa.JSON(), nullable=False, server_default="[]"))
    op.execute(
        "ALTER TABLE variants ADD COLUMN weight_grams INTEGER DEFAULT 0 NOT NULL"
        " CONSTRAINT ck_variants_weight_non_negative CHECK (weight_grams >= 0)"
    )
    with op.batch_alter_table("cart_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shipping_terms_seen", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("cart_items", schema=None) as batch_op:
        batch_op.drop_column("shipping_terms_seen")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("variants", "weight_grams")
        for column in (
            "ships_to",
            "shipping_weight_tiers",
            "shipping_version",
            "shipping_additional_cents",
            "shipping_mode",
        ):
            op.drop_column("vendors", column)
        return
    # SQLite's own DROP COLUMN refuses a column with a CHECK; the copy keeps the rest
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_variants_weight_non_negative"), type_="check")
        batch_op.drop_column("weight_grams")
    with op.batch_alter_table("vendors", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_vendors_shipping_version_positive"), type_="check")
        batch_op.drop_constraint(op.f("ck_vendors_shipping_additional_non_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_vendors_shipping_mode_known"), type_="check")
        for column in (
            "ships_to",
            "shipping_weight_tiers",
            "shipping_version",
            "shipping_additional_cents",
            "shipping_mode",
        ):
            batch_op.drop_column(column)
