"""Demo data for `make run`: an admin, two buyers, three approved vendors, ~60 products."""

from __future__ import annotations

import random
from dataclasses import dataclass

import requests
from sqlalchemy import select

from marketplace.accounts import services as accounts
from marketplace.accounts.models import Role, User
from marketplace.catalog import services as catalog
from marketplace.catalog import shipping
from marketplace.catalog.models import ProductStatus, VendorStatus
from marketplace.catalog.shipping import ShippingTerms
from marketplace.db import db
from marketplace.images import demo as demo_images
from marketplace.orders import tax
from marketplace.payments import services as payments

DEMO_PASSWORD = "demo-password"


@dataclass(frozen=True)
class Login:
    role: str
    email: str
    password: str


_VENDORS = {
    "Trailhead Outfitters": [
        (
            "Outdoor/Footwear",
            ["Salomon", "Merrell", "Adidas"],
            ["Trail Runner", "Hiking Boot", "Approach Shoe", "Sneaker"],
        ),
        ("Outdoor/Camping", ["Coleman", "MSR"], ["Tent", "Sleeping Bag", "Camp Stove", "Headlamp"]),
    ],
    "Urban Threads": [
        (
            "Clothing/Tops",
            ["Patagonia", "Uniqlo", "Adidas"],
            ["T-Shirt", "Hoodie", "Flannel Shirt", "Polo"],
        ),
        ("Clothing/Bottoms", ["Levi's", "Uniqlo"], ["Jeans", "Chinos", "Joggers", "Shorts"]),
    ],
    "Gadget Garage": [
        ("Electronics/Audio", ["Sony", "JBL", "Anker"], ["Headphones", "Speaker", "Earbuds"]),
        ("Electronics/Accessories", ["Anker", "Belkin"], ["Charger", "Power Bank", "USB-C Cable"]),
        ("Home/Kitchen", ["OXO", "Bodum"], ["French Press", "Kettle", "Knife Set"]),
    ],
}
_ADJECTIVES = ["Classic", "Pro", "Lite", "Everyday", "Summit", "Urban", "Ultra", "Essential"]
_SIZES = ["S", "M", "L"]
_COLOURS = ["Black", "Blue", "Green", "Red", "Grey"]


DEMO_TAX_RATES = {"CA": 725, "NY": 400}

# Each demo vendor ships on different terms (docs/shipping.md), in _VENDORS' order: by weight
# to the US and Canada only; per item with free shipping over $75; a flat $5.99 per order,
# free over $75, everywhere.
_SHIPPING = [
    ShippingTerms(
        mode="weight_tiers",
        weight_tiers=((1000, 499), (3000, 899), (10_000, 1499)),
        ships_to=("CA", "US"),
    ),
    ShippingTerms(mode="per_item", flat_cents=399, additional_cents=99, free_over_cents=7500),
    ShippingTerms(flat_cents=599, free_over_cents=7500),
]
_WEIGHT_GRAMS = {  # a variant's weight by its category
    "Outdoor/Footwear": 900,
    "Outdoor/Camping": 2200,
    "Clothing/Tops": 250,
    "Clothing/Bottoms": 550,
    "Electronics/Audio": 350,
    "Electronics/Accessories": 150,
    "Home/Kitchen": 1200,
}


def load_demo_data(seed: int = 7, emulator_url: str | None = None) -> list[Login] | None:
    """Create the demo accounts and catalog; `None` when demo data exists already.

    With the offline Stripe emulator, the demo vendors also finish Connect onboarding and the
    demo buyers place orders that end in every state (`marketplace.demo_orders`).
    """
    if db.session.scalar(select(User.id).limit(1)) is not None:
        return None
    rng = random.Random(seed)
    logins = [Login("admin", "admin@example.com", DEMO_PASSWORD)]
    accounts.create_admin("admin@example.com", DEMO_PASSWORD, "Ada Admin")
    for n, name in enumerate(["Bea Buyer", "Ben Buyer"], start=1):
        email = f"buyer{n}@example.com"
        accounts.register(email, DEMO_PASSWORD, name, Role.BUYER, email_verified=True)
        logins.append(Login("buyer", email, DEMO_PASSWORD))
    for n, (vendor_name, lines) in enumerate(_VENDORS.items(), start=1):
        email = f"vendor{n}@example.com"
        user = accounts.register(
            email, DEMO_PASSWORD, vendor_name, Role.VENDOR, email_verified=True
        )
        logins.append(Login("vendor", email, DEMO_PASSWORD))
        vendor = catalog.vendor_for_user(user.id)
        catalog.set_vendor_status(vendor.id, VendorStatus.APPROVED)
        shipping.set_terms(vendor.id, _SHIPPING[(n - 1) % len(_SHIPPING)])
        if emulator_url:
            _onboard(vendor.id, emulator_url)
        _load_products(vendor.id, n, lines, rng)
    # Tax rates, so the checkout's quote shows tax on the first run (the migration seeds them;
    # a database without its starter table gets these two, shipping untaxed).
    existing = {(rate.country, rate.region) for rate in tax.rates()}
    for region, rate_bps in DEMO_TAX_RATES.items():
        if ("US", region) not in existing:
            tax.set_rate("US", region, rate_bps)
    if emulator_url:
        # Orders in every state, paid at the emulator (marketplace/demo_orders.py).
        from marketplace.demo_orders import load_demo_orders

        load_demo_orders(emulator_url)
    return logins


def _onboard(vendor_id: int, emulator_url: str) -> None:
    account_id, _ = payments.start_onboarding(
        vendor_id, refresh_url="http://127.0.0.1/", return_url="http://127.0.0.1/"
    )
    response = requests.post(
        f"{emulator_url}/_emulator/accounts/{account_id}/complete_onboarding", timeout=10
    )
    response.raise_for_status()
    payments.refresh_account(vendor_id)


def _load_products(
    vendor_id: int, vendor_n: int, lines: list[tuple[str, list[str], list[str]]], rng: random.Random
) -> None:
    count = 0
    per_vendor = 20
    while count < per_vendor:
        category, brands, nouns = lines[count % len(lines)]
        brand = rng.choice(brands)
        noun = rng.choice(nouns)
        title = f"{brand} {rng.choice(_ADJECTIVES)} {noun}"
        base_price = rng.randrange(9, 250) * 100 + rng.choice([0, 49, 99])
        sized = category.startswith(("Clothing", "Outdoor/Footwear"))
        colour_options = rng.sample(_COLOURS, 2)
        variants = []
        for i, colour in enumerate(colour_options):
            for size in _SIZES if sized else [None]:
                attributes = {"colour": colour} | ({"size": size} if size else {})
                sku = f"V{vendor_n}-{count:03d}-{i}{size or ''}"
                variants.append(
                    catalog.VariantInput(
                        sku=sku,
                        price_cents=base_price + (500 if size == "L" else 0),
                        stock=rng.choice([0, 3, 8, 15, 40]),
                        attributes=attributes,
                        weight_grams=_WEIGHT_GRAMS.get(category, 500),
                    )
                )
        product = catalog.create_product(
            vendor_id,
            catalog.ProductInput(
                title=title,
                description=f"The {title.lower()}: built to last, chosen by {brand} fans.",
                brand=brand,
                category=category,
                status=ProductStatus.ACTIVE,
                variants=variants,
            ),
        )
        demo_images.add_demo_images(vendor_id, product.id, title, colour_options[: 1 + count % 2])
        count += 1
