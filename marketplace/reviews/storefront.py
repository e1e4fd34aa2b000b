"""What the storefront shows of a product and of a vendor: the catalog joined with reviews.

It lives in `reviews/` because reviews depend on the catalog, not the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.catalog import services as catalog
from marketplace.catalog.models import Product, Variant, Vendor
from marketplace.reviews import services as reviews
from marketplace.reviews.models import Review

REVIEWS_SHOWN = 20


@dataclass
class ProductPage:
    product: Product
    variants: list[Variant]  # the active ones, cheapest first
    reviews: list[Review]  # newest first, with the vendor's reply
    review_total: int


@dataclass
class VendorPage:
    vendor: Vendor
    products: list[Product]
    product_total: int
    reviews: list[Review]
    review_total: int


def product_page(product_id: int) -> ProductPage:
    """An active product of an approved vendor, its options and its latest reviews.

    :raises ProductNotFound:
    """
    product = catalog.public_product(product_id)
    variants = sorted(
        (v for v in product.variants if v.is_active), key=lambda v: (v.price_cents, v.id)
    )
    latest, total = reviews.product_reviews(product.id, 1, REVIEWS_SHOWN)
    return ProductPage(product, variants, latest, total)


def vendor_page(vendor_id: int, page: int, per_page: int) -> VendorPage:
    """An approved vendor's public page: its rating, one page of its active products and its
    latest reviews.

    :raises VendorNotFound:
    """
    vendor = catalog.public_vendor(vendor_id)
    products, total = catalog.public_vendor_products(vendor.id, page, per_page)
    latest, review_total = reviews.vendor_reviews(vendor.id, 1, 5)
    return VendorPage(vendor, products, total, latest, review_total)
