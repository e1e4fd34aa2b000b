"""tax: product tax categories, reduced rates, taxed shipping, reverse charge; starter rates

`products.tax_category` (standard | reduced | exempt, default standard); `tax_rates` gain
`reduced_rate_bps` (NULL: the destination has no reduced rate, the standard one applies) and
`shipping_taxed`; `orders` keep the buyer's VAT number and whether the EU reverse charge applied,
and whether prices were shown tax-inclusive; `vendor_orders.shipping_tax_cents` is the part of
`tax_cents` charged on shipping. Seeds a starter table (EU-27 VAT, US state base sales tax),
each row's note citing its source; rows already there are left as they are.

Revision ID: 0021_tax_categories_rates
Revises: 0020_coupons_tables
Create Date: 2026-12-03 13:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0021_tax_categories_rates"
down_revision = "0020_coupons_tables"
branch_labels = None
depends_on = None

EU_SOURCE = (
    "EU VAT, standard and main reduced rate: European Commission, 'VAT rates applied in the"
    " Member States of the European Union' (2025); check before relying on it"
)
# country: (standard, main reduced) in basis points
EU_VAT = {
    "AT": (2000, 1000),
    "BE": (2100, 600),
    "BG": (2000, 900),
    "HR": (2500, 1300),
    "CY": (1900, 500),
    "CZ": (2100, 1200),
    "DK": (2500, None),
    "EE": (2400, 900),
    "FI": (2550, 1400),
    "FR": (2000, 550),
    "DE": (1900, 700),
    "GR": (2400, 1300),
    "HU": (2700, 500),
    "IE": (2300, 1350),
    "IT": (2200, 1000),
    "LV": (2100, 1200),
    "LT": (2100, 900),
    "LU": (1700, 800),
    "MT": (1800, 700),
    "NL": (2100, 900),
    "PL": (2300, 800),
    "PT": (2300, 600),
    "RO": (2100, 1100),
    "SK": (2300, 500),
    "SI": (2200, 950),
    "ES": (2100, 1000),
    "SE": (2500, 1200),
}
US_SOURCE = (
    "US state base sales tax (no local taxes), whole basis points: state revenue"
    " departments as summarised by the Tax Foundation, 'State and Local Sales Tax Rates'"
    " (2025); check before relying on it"
)
# state: base rate in basis points (half basis points rounded up, said in the note)
US_STATE = {
    "AL": 400, "AK": 0, "AZ": 560, "AR": 650, "CA": 725, "CO": 290, "CT": 635, "DE": 0,
    "DC": 600, "FL": 600, "GA": 400, "HI": 400, "ID": 600, "IL": 625, "IN": 700, "IA": 600,
    "KS": 650, "KY": 600, "LA": 500, "ME": 550, "MD": 600, "MA": 625, "MI": 600, "MN": 688,
    "MS": 700, "MO": 423, "MT": 0, "NE": 550, "NV": 685, "NH": 0, "NJ": 663, "NM": 488,
    "NY": 400, "NC": 475, "ND": 500, "OH": 575, "OK": 450, "OR": 0, "PA": 600, "RI": 700,
    "SC": 600, "SD": 420, "TN": 700, "TX": 625, "UT": 485, "VT": 600, "VA": 430, "WA": 650,
    "WV": 600, "WI": 500, "WY": 400,
}  # fmt: skip
ROUNDED = {"MN": "6.875 %", "MO": "4.225 %", "NJ": "6.625 %", "NM": "4.875 %"}
# States that tax delivery charges on taxable goods in general (conditions vary: check).
US_SHIPPING_TAXED = {
    "AR", "CT", "DC", "GA", "HI", "IN", "KS", "KY", "MI", "MN", "MS", "NE", "NJ", "NM", "NY",
    "NC", "ND", "OH", "PA", "RI", "SC", "SD", "TN", "TX", "VT", "WA", "WV", "WI",
}  # fmt: skip


def _starter_rows() -> list[dict]:
    rows = [
        {
            "country": country,
            "region": None,
            "rate_bps": standard,
            "reduced_rate_bps": reduced,
            "shipping_taxed": True,  # EU VAT: delivery follows the goods' rate
            "note": EU_SOURCE,
        }
        for country, (standard, reduced) in EU_VAT.items()
    ]
    for state, bps in US_STATE.items():
        note = US_SOURCE if bps else "No state sales tax. " + US_SOURCE
        if state in ROUNDED:
            note = f"{ROUNDED[state]} rounded to {bps} bps. {US_SOURCE}"
        rows.append(
            {
                "country": "US",
                "region": state,
                "rate_bps": bps,
                "reduced_rate_bps": None,
                "shipping_taxed": state in US_SHIPPING_TAXED,
                "note": note,
            }
        )
    return rows


def upgrade():
    # Plain ADD COLUMN statements both dialects take (SQLite allows a CHECK in ADD COLUMN), so
    # SQLite copies no table other rows point at.
    op.execute(
        "ALTER TABLE products ADD COLUMN tax_category VARCHAR(16) DEFAULT 'standard' NOT NULL"
        " CONSTRAINT ck_products_tax_category_known"
        " CHECK (tax_category IN ('standard', 'reduced', 'exempt'))"
    )
    op.execute(
        "ALTER TABLE tax_rates ADD COLUMN reduced_rate_bps INTEGER"
        " CONSTRAINT ck_tax_rates_reduced_rate_range"
        " CHECK (reduced_rate_bps IS NULL OR (reduced_rate_bps >= 0 AND reduced_rate_bps <= 5000))"
    )
    op.add_column(
        "tax_rates",
        sa.Column("shipping_taxed", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("orders", sa.Column("vat_number", sa.String(length=20), nullable=True))
    op.add_column(
        "orders",
        sa.Column("reverse_charge", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "orders",
        sa.Column("prices_include_tax", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.execute(
        "ALTER TABLE vendor_orders ADD COLUMN shipping_tax_cents INTEGER DEFAULT 0 NOT NULL"
        " CONSTRAINT ck_vendor_orders_shipping_tax_within"
        " CHECK (shipping_tax_cents >= 0 AND shipping_tax_cents <= tax_cents)"
    )

    tax_rates = sa.table(
        "tax_rates",
        sa.column("country", sa.String),
        sa.column("region", sa.String),
        sa.column("rate_bps", sa.Integer),
        sa.column("reduced_rate_bps", sa.Integer),
        sa.column("shipping_taxed", sa.Boolean),
        sa.column("note", sa.Text),
    )
    connection = op.get_bind()
    existing = set(connection.execute(sa.text("SELECT country, region FROM tax_rates")).all())
    rows = [r for r in _starter_rows() if (r["country"], r["region"]) not in existing]
    if rows:
        op.bulk_insert(tax_rates, rows)


def downgrade():
    # The starter rows stay (they are plain rates the older schema reads the same way).
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("prices_include_tax")
        batch_op.drop_column("reverse_charge")
        batch_op.drop_column("vat_number")
    with op.batch_alter_table("tax_rates", schema=None) as batch_op:
        batch_op.drop_column("shipping_taxed")
    checked = (
        ("vendor_orders", "ck_vendor_orders_shipping_tax_within", "shipping_tax_cents"),
        ("tax_rates", "ck_tax_rates_reduced_rate_range", "reduced_rate_bps"),
        ("products", "ck_products_tax_category_known", "tax_category"),
    )
    for table, check, column in checked:
        if op.get_bind().dialect.name == "postgresql":
            op.drop_column(table, column)
        else:  # SQLite's own DROP COLUMN refuses a column with a CHECK; the copy keeps the rest
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.drop_constraint(op.f(check), type_="check")
                batch_op.drop_column(column)
