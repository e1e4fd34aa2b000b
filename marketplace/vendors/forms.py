"""Vendor forms: products with variant rows, variant price/stock, shop settings.

Forms check shape only: a money amount is a non-negative figure with at most the currency's
decimals (converted exactly to integer cents with Decimal), stock is an integer, attributes are
"name=value" pairs. Ranges and other business rules are the catalog services' job; the views
copy the services' errors back onto these forms.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from marketplace import forms
from marketplace.catalog import services as catalog
from marketplace.errors import DomainError
from marketplace.forms import MoneyField, money_input
from marketplace.money import parse_money, shop_money

MAX_VARIANT_ROWS = 20
NEW_PRODUCT_ROWS = 4


def parse_attributes(text: str) -> dict[str, str]:
    """'colour=Black, size=M' → {'colour': 'Black', 'size': 'M'}.

    :raises ValueError: a pair without '=', an empty name or a repeated name.
    """
    attributes: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ValueError("Write attributes as name=value pairs, e.g. colour=Black, size=M.")
        if name in attributes:
            raise ValueError(f"The attribute {name!r} is given twice.")
        attributes[name] = value
    return attributes


def format_attributes(attributes: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (attributes or {}).items())


class AttributesField(StringField):
    """'name=value, name=value' text; `.attributes` is the parsed dict."""

    attributes: dict[str, str]

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        self.attributes = {}
        self.attributes = parse_attributes(self.data or "")


class VariantRowForm(Form):
    """One variant row of the new-product form; a row left entirely blank is ignored."""

    sku = StringField("SKU", validators=[Length(max=64)])
    price = MoneyField("Price")
    stock = IntegerField("Stock", validators=[Optional()])
    attributes = AttributesField("Attributes")

    def is_blank(self) -> bool:
        return (
            not any(
                (field.raw_data or [""])[0].strip() for field in (self.sku, self.price, self.stock)
            )
            and not (self.attributes.raw_data or [""])[0].strip()
        )

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if self.is_blank():
            return ok
        for field in (self.sku, self.price):
            if not (field.data or "").strip():
                field.errors = [*field.errors, "Required for each variant."]
                ok = False
        return ok


STATUS_NEW = [SelectChoice("draft", "Draft (hidden)"), SelectChoice("active", "Active (for sale)")]
STATUS_ALL = [*STATUS_NEW, SelectChoice("archived", "Archived (withdrawn)")]


TAX_CATEGORIES = [
    SelectChoice("standard", "Standard rate"),
    SelectChoice("reduced", "Reduced rate"),
    SelectChoice("exempt", "Exempt (no tax)"),
]


class ProductFields(FlaskForm):
    title = StringField("Title", validators=[InputRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Length(max=20_000)])
    brand = StringField("Brand", validators=[Length(max=80)])
    category = StringField(
        "Category", validators=[Length(max=255)], description='A path like "Clothing/Tops".'
    )
    tax_category = SelectField(
        "Tax category",
        choices=TAX_CATEGORIES,
        default="standard",
        description="Reduced: food, books and the like, where the destination has a reduced"
        " rate. Exempt: no tax.",
    )


class NewProductForm(ProductFields):
    status = SelectField("Status", choices=STATUS_NEW, default="draft")
    variants = FieldList(
        FormField(VariantRowForm), min_entries=NEW_PRODUCT_ROWS, max_entries=MAX_VARIANT_ROWS
    )

    def filled_rows(self) -> list[tuple[int, VariantRowForm]]:
        """(row index, row form) of every row with something typed in it."""
        return [
            (index, entry.form)
            for index, entry in enumerate(self.variants.entries)
            if not entry.form.is_blank()
        ]


class EditProductForm(ProductFields):
    status = SelectField("Status", choices=STATUS_ALL)


class AddVariantForm(FlaskForm):
    sku = StringField("SKU", validators=[InputRequired(), Length(max=64)])
    price = MoneyField("Price", validators=[InputRequired()])
    stock = IntegerField("Stock", validators=[InputRequired()])
    attributes = AttributesField("Attributes")
    weight_grams = IntegerField(
        "Weight (grams)", validators=[Optional()], description="For weight-tier shipping."
    )


class EditVariantForm(FlaskForm):
    price = MoneyField("Price", validators=[InputRequired()])
    stock = IntegerField("Stock on hand", validators=[InputRequired()])
    low_stock_threshold = IntegerField("Low-stock warning at", validators=[Optional()])
    weight_grams = IntegerField(
        "Weight (grams)", validators=[Optional()], description="For weight-tier shipping."
    )


class SettingsForm(FlaskForm):
    display_name = StringField("Shop name", validators=[InputRequired(), Length(max=120)])
    shipping_flat = MoneyField("Flat shipping per order", validators=[InputRequired()])
    free_shipping_threshold = MoneyField(
        "Free shipping from", description="Leave blank for no free shipping."
    )


class ShippingForm(FlaskForm):
    """The vendor's shipping terms (docs/shipping.md). Tiers are lines of "grams price"
    ("500 4.00"); countries are ISO codes separated by commas or spaces."""

    mode = SelectField(
        "How shipping is charged",
        choices=[
            SelectChoice("flat_per_order", "A flat fee per order"),
            SelectChoice("per_item", "Per item: the first, then each additional"),
            SelectChoice("weight_tiers", "By the order's weight"),
        ],
    )
    flat = MoneyField(
        "Flat fee, or first item", description="Per order, or for the first item per item."
    )
    additional = MoneyField("Each additional item", description="Per item mode only.")
    weight_tiers = TextAreaField(
        "Weight tiers",
        description='One per line: up to how many grams, then the fee, e.g. "500 4.00". '
        "Heavier than the last tier pays the last tier's fee.",
    )
    free_over = MoneyField(
        "Free shipping from", description="Of your items in the order; blank for never."
    )
    ships_to = StringField(
        "Ships to", description="Country codes, e.g. US, CA; blank for everywhere."
    )

    def parsed_tiers(self) -> list[dict[str, int]]:
        """:raises ValueError: a line that is not "grams price"."""
        tiers = []
        for number, line in enumerate((self.weight_tiers.data or "").splitlines(), 1):
            if not line.strip():
                continue
            grams, _, price = line.strip().partition(" ")
            if not grams.isdigit() or not price.strip():
                raise ValueError(f'Line {number}: write "grams price", e.g. "500 4.00".')
            try:
                cents = parse_money(price.strip(), *_money_settings())
            except ValueError as error:
                raise ValueError(f"Line {number}: {error}") from None
            tiers.append({"up_to_grams": int(grams), "cents": cents})
        return tiers

    def countries(self) -> list[str]:
        text = (self.ships_to.data or "").replace(",", " ")
        return [code for code in text.split() if code]


def _money_settings() -> tuple[str, str]:
    from flask import current_app

    return current_app.config["CURRENCY"], current_app.config["LOCALE"]


def format_tiers(tiers: list[dict[str, int]]) -> str:
    return "\n".join(f"{t['up_to_grams']} {money_input(t['cents'])}" for t in tiers)


class ProductStatusFilter(FlaskForm):
    class Meta:
        csrf = False

    status = SelectField(
        "Status",
        choices=[
            SelectChoice("", "All"),
            SelectChoice("draft", "Draft"),
            SelectChoice("active", "Active"),
            SelectChoice("archived", "Archived"),
        ],
        default="",
    )
    page = IntegerField(
        "Page", validators=[Optional(), NumberRange(min=1, max=1_000_000)], default=1
    )


def price_message() -> str:
    """The catalog's price limits the way the shop writes money (the service says minor units)."""
    return f"must be between {shop_money(1)} and {shop_money(catalog.MAX_PRICE_CENTS)}"


def add_domain_error(
    form: Form, error: DomainError, names: dict[str, str] | None = None, money: bool = False
) -> int:
    """The shared helper; with `money`, limits on `*_cents` fields are said in the shop's
    currency instead of the service's minor units."""

    def in_currency(key: str, message: str) -> str:
        if key.endswith("price_cents") and money:
            return price_message()
        if key.endswith("_cents") and money:
            return f"must be between {shop_money(0)} and {shop_money(catalog.MAX_PRICE_CENTS)}"
        return message

    return forms.add_domain_error(form, error, names, in_currency)
