"""Query text handling and the document built for a product (no database)."""

from __future__ import annotations

import pytest

from marketplace.search import schema
from marketplace.search.services import (
    MAX_QUERY_CHARS,
    MAX_TERMS,
    PRICE_BUCKETS,
    _bucket,
    query_words,
    sanitize,
)


def facts(**overrides):
    base = {
        "id": 7,
        "title": "Trail Running Shoes",
        "description": "Grippy soles.",
        "brand": "Adidas",
        "category": "Shoes/Running",
        "vendor_id": 3,
        "vendor": "Peak Outfitters",
        "prices": (4500, 3900),
        "rating_sum": 9,
        "rating_count": 2,
        "in_stock": True,
        "created_micros": 1_700_000_000_000_000,
    }
    return schema.ProductFacts(**{**base, **overrides})


def test_query_words_are_stemmed_lowercased_and_stop_words_dropped():
    assert query_words("SHOES for the Trail and the trails") == ["shoe", "trail"]


@pytest.mark.parametrize("text", ["(", "AND OR", "*", "", None, "\x00", "   ", "~^[]{}"])
def test_syntax_and_empty_input_give_no_words(text):
    assert query_words(text) == []


def test_long_and_odd_input_is_bounded():
    assert len(sanitize("x" * 10_000)) == MAX_QUERY_CHARS
    assert len(query_words(" ".join(f"word{i}" for i in range(100)))) == MAX_TERMS
    assert sanitize("a\ud800b\x07c") == "ab c"
    assert query_words("title:( 靴子 ünïcödé") == ["titl", "靴子", "ünïcödé"]


def test_document_fields():
    doc = schema.document(facts())
    assert doc["id"] == "7" and doc["pid"] == 7
    assert doc["price_min"] == 3900 and doc["price_max"] == 4500
    assert doc["category_paths"] == "Shoes\x1fShoes/Running"
    assert doc["brand_key"] == "adidas" and doc["brand_name"] == b"Adidas"
    assert doc["rating"] == 1 + 4_500_000
    assert doc["fingerprint"] == schema.fingerprint(doc)
    assert schema.document(facts(title="Other"))["fingerprint"] != doc["fingerprint"]


def test_document_without_brand_category_or_rating():
    doc = schema.document(facts(brand=None, category=None, rating_sum=0, rating_count=0))
    assert "brand_key" not in doc and "category_paths" not in doc
    assert doc["brand_name"] == b"" and doc["rating"] == schema.UNRATED


def test_price_buckets_cover_every_price():
    assert _bucket(0) == 0 and _bucket(999) == 0 and _bucket(1000) == 1
    assert _bucket(10**9) == len(PRICE_BUCKETS) - 1
    for (_, high), (low, _) in zip(PRICE_BUCKETS, PRICE_BUCKETS[1:], strict=False):
        assert high is not None and low == high + 1
