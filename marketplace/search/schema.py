"""The product document: Whoosh schema and how a Product becomes one.

Text fields use a stemming analyzer so `sneakers` finds `sneaker`; filters and facets read
untokenized fields and sortable columns (never stored fields), which is what keeps faceted
queries fast (ARCHITECTURE.md, "Search"). Only visible products get a document: active, of an
approved vendor, with at least one active variant.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from whoosh import columns, fields
from whoosh.analysis import LowercaseFilter, RegexTokenizer, StemmingAnalyzer

from marketplace.catalog.models import Product, ProductStatus, VendorStatus

# Query text and every indexed text share these analyzers.
TEXT_ANALYZER = StemmingAnalyzer()
# Unstemmed words for prefix suggestions (`runn` must reach `running`, whose stem is `run`).
WORD_ANALYZER = RegexTokenizer() | LowercaseFilter()
# Category ancestors joined by a unit separator: one term per path ("clothing", "clothing/tops").
PATH_SEPARATOR = "\x1f"
PATH_ANALYZER = RegexTokenizer(r"[^\x1f]+") | LowercaseFilter()

# Ratings are indexed as 1 + integer millionths of the average (1 + sum * 10**6 // count), so
# `min_rating` compares exactly like SQL's `rating_sum >= r * rating_count` (Whoosh 2.7.4's
# float and signed columns cannot even be created). Unrated is 0: it sorts after
# every rating and falls outside every `min_rating` range.
RATING_SCALE = 1_000_000
UNRATED = 0

# Searchable text fields and their query-time boosts: title above everything else.
TEXT_FIELDS: dict[str, float] = {
    "title": 4.0,
    "brand": 2.0,
    "category": 1.5,
    "vendor": 1.0,
    "description": 1.0,
}


def make_schema() -> fields.Schema:
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        pid=fields.COLUMN(columns.NumericColumn("Q")),
        fingerprint=fields.STORED(),
        title=fields.TEXT(analyzer=TEXT_ANALYZER, stored=True, phrase=False),
        title_words=fields.TEXT(analyzer=WORD_ANALYZER, phrase=False),
        description=fields.TEXT(analyzer=TEXT_ANALYZER, phrase=False),
        brand=fields.TEXT(analyzer=TEXT_ANALYZER, phrase=False),
        brand_key=fields.ID(),
        brand_name=fields.COLUMN(columns.RefBytesColumn()),
        category=fields.TEXT(analyzer=TEXT_ANALYZER, phrase=False),
        category_paths=fields.KEYWORD(analyzer=PATH_ANALYZER),
        category_path=fields.COLUMN(columns.RefBytesColumn()),
        vendor=fields.TEXT(analyzer=TEXT_ANALYZER, phrase=False),
        vendor_id=fields.ID(stored=True),
        # Numbers live in columns only: range filters and sorts read the column arrays, which
        # spares ~16 index terms per number and document (Whoosh's tiered NUMERIC terms).
        price_min=fields.COLUMN(columns.NumericColumn("I")),
        price_max=fields.COLUMN(columns.NumericColumn("I")),
        rating=fields.COLUMN(columns.NumericColumn("I", default=UNRATED)),
        in_stock=fields.BOOLEAN(stored=True),
        created=fields.COLUMN(columns.NumericColumn("Q")),
    )


SCHEMA = make_schema()


@dataclass(frozen=True)
class ProductFacts:
    """What the index knows about a product, as plain values (from the DB or a generator)."""

    id: int
    title: str
    description: str
    brand: str | None
    category: str | None
    vendor_id: int
    vendor: str
    prices: tuple[int, ...]  # active variants only
    rating_sum: int
    rating_count: int
    in_stock: bool
    created_micros: int


def facts_for(product: Product) -> ProductFacts | None:
    """The product's facts if buyers may see it, else None (its document must go)."""
    prices = tuple(v.price_cents for v in product.variants if v.is_active)
    if (
        product.status is not ProductStatus.ACTIVE
        or product.vendor.status is not VendorStatus.APPROVED
        or not prices
    ):
        return None
    return ProductFacts(
        id=product.id,
        title=product.title,
        description=product.description or "",
        brand=product.brand.name if product.brand else None,
        category=product.category.path if product.category else None,
        vendor_id=product.vendor_id,
        vendor=product.vendor.display_name,
        prices=prices,
        rating_sum=product.rating_sum,
        rating_count=product.rating_count,
        in_stock=any(v.available > 0 for v in product.variants if v.is_active),
        created_micros=int(product.created_at.timestamp() * 1_000_000),
    )


def scaled_rating(rating_sum: int, rating_count: int) -> int:
    return 1 + rating_sum * RATING_SCALE // rating_count if rating_count > 0 else UNRATED


def category_ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def document(facts: ProductFacts) -> dict[str, Any]:
    """The Whoosh document for a visible product, with a fingerprint of its content."""
    doc: dict[str, Any] = {
        "id": str(facts.id),
        "pid": facts.id,
        "title": facts.title,
        "title_words": facts.title,
        "description": facts.description,
        "brand": facts.brand or "",
        "brand_key": (facts.brand or "").lower(),
        "brand_name": (facts.brand or "").encode(),
        "category": (facts.category or "").replace("/", " "),
        "category_paths": PATH_SEPARATOR.join(category_ancestors(facts.category or "")),
        "category_path": (facts.category or "").encode(),
        "vendor": facts.vendor,
        "vendor_id": str(facts.vendor_id),
        "price_min": min(facts.prices),
        "price_max": max(facts.prices),
        "rating": scaled_rating(facts.rating_sum, facts.rating_count),
        "in_stock": facts.in_stock,
        "created": facts.created_micros,
    }
    doc = {k: v for k, v in doc.items() if v != ""}  # no brand/category: no term at all
    doc["fingerprint"] = fingerprint(doc)
    return doc


def fingerprint(doc: dict[str, Any]) -> str:
    """A hash of everything indexed, so `search check` can spot stale documents."""
    plain = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in doc.items()}
    plain.pop("fingerprint", None)
    return hashlib.sha1(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]
