"""Shared set-up of the browser journeys: two onboarded vendors, their products, a tax rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketplace.catalog import services as catalog
from marketplace.catalog.models import Product, ProductStatus
from marketplace.orders import tax
from tests.functional.money import onboarded_vendor
from tests.helpers import VendorAccount


@dataclass
class Shop:
    lanterns: VendorAccount  # $5.00 shipping, free from $100.00
    teas: VendorAccount  # $3.00 shipping, never free
    lantern: Product  # S red $24.00 (5 in stock), L blue $30.00 (sold out)
    tea: Product  # $12.50 (10 in stock)


def two_vendor_shop(api: Any, emulator: Any) -> Shop:
    """Vendors onboarded through the emulator (so capture and transfer work), CA tax 7.25 %."""
    lanterns = onboarded_vendor(api, emulator, "Lantern Works")
    teas = onboarded_vendor(api, emulator, "Tea Garden")
    catalog.update_vendor_settings(
        lanterns.vendor.id,
        display_name="Lantern Works",
        shipping_flat_cents=500,
        free_shipping_threshold_cents=10_000,
    )
    catalog.update_vendor_settings(
        teas.vendor.id, display_name="Tea Garden", shipping_flat_cents=300
    )
    tax.set_rate("US", "CA", 725)
    lantern = catalog.create_product(
        lanterns.vendor.id,
        catalog.ProductInput(
            title="Storm Lantern",
            description="A lantern that keeps burning in the wind.",
            brand="Feuerhand",
            category="Outdoor",
            status=ProductStatus.ACTIVE,
            variants=[
                catalog.VariantInput(
                    sku="LAN-S-RED",
                    price_cents=2400,
                    stock=5,
                    attributes={"size": "S", "colour": "red"},
                ),
                catalog.VariantInput(
                    sku="LAN-L-BLUE",
                    price_cents=3000,
                    stock=0,
                    attributes={"size": "L", "colour": "blue"},
                ),
            ],
        ),
    )
    tea = catalog.create_product(
        teas.vendor.id,
        catalog.ProductInput(
            title="Oolong Tea",
            description="Half-fermented, from the hills.",
            brand="Hillside",
            category="Food",
            status=ProductStatus.ACTIVE,
            variants=[catalog.VariantInput(sku="TEA-100G", price_cents=1250, stock=10)],
        ),
    )
    return Shop(lanterns, teas, lantern, tea)
