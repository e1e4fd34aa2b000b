"""Answering catalog queries from the index: full text, filters, sorts, pages and facets.

Plain values in, a dataclass out; read-only (any web worker). How a query runs:

1. The user's text is never parsed as Whoosh syntax: it is cut to `MAX_QUERY_CHARS`, run
   through the same stemming analyzer as the documents, and each word becomes a term over the
   text fields (title boosted highest); a word of 4+ letters that the index does not know
   is widened to the indexed words one edit away (`addidas` → `adidas`).
   Words are ANDed; when that finds nothing, ORed (ARCHITECTURE.md: AND first, OR costs 4×).
2. Each active filter becomes a set of document numbers (term postings / numeric ranges).
3. Results = text ∩ every filter. Each facet counts text ∩ every *other* filter, so choosing a
   brand still shows the other brands' counts. Counting reads sortable columns, loaded once per
   index segment (segments never change) and kept in memory; facet counts are cached per
   index generation.
4. Relevance order comes from Whoosh's scorer restricted to the result set; the other sorts
   use the column arrays.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from whoosh.query import And, Or, Prefix, Query, Term
from whoosh.searching import Searcher

from marketplace.catalog.models import Product, ProductStatus, Vendor, VendorStatus
from marketplace.catalog.services import CatalogFilters, browse
from marketplace.db import db
from marketplace.search import index as storage
from marketplace.search.schema import (
    RATING_SCALE,
    TEXT_ANALYZER,
    TEXT_FIELDS,
    WORD_ANALYZER,
    category_ancestors,
)

SORTS = ("relevance", "price_asc", "price_desc", "rating", "newest")
MAX_QUERY_CHARS = 200
MAX_TERMS = 8
FUZZY_MIN_LENGTH = 4  # shorter words would match too much at one edit (cat → hat, car, …)
FUZZY_WEIGHT = 0.5  # a corrected word counts half as much as an exact one
MAX_CORRECTIONS = 20  # per word and field
# Inclusive cent ranges, so a bucket can be sent back as min_price / max_price as is.
PRICE_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 999),
    (1000, 2499),
    (2500, 4999),
    (5000, 9999),
    (10000, 24999),
    (25000, None),
)
RATING_STEPS = (1, 2, 3, 4)
MAX_FACET_VALUES = 50
PRESORTED_ABOVE = 2000  # result sets larger than this page through a presorted order


@dataclass(frozen=True)
class FacetCount:
    value: str
    count: int


@dataclass(frozen=True)
class PriceFacet:
    min_cents: int
    max_cents: int | None
    count: int


@dataclass(frozen=True)
class RatingFacet:
    min: int
    count: int


@dataclass(frozen=True)
class Facets:
    brand: list[FacetCount] = field(default_factory=list)
    category: list[FacetCount] = field(default_factory=list)
    price: list[PriceFacet] = field(default_factory=list)
    rating: list[RatingFacet] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    product_ids: list[int]
    total: int
    page: int
    per_page: int
    facets: Facets
    # "all" (no words), "and", "or" (AND found nothing), "none" (no index built yet)
    matched: str = "all"

    @property
    def ready(self) -> bool:
        return self.matched != "none"


# --- query text ----------------------------------------------------------------------------


def sanitize(text: str | None) -> str:
    """Bounded, printable text: never query syntax, never lone surrogates."""
    text = (text or "")[: MAX_QUERY_CHARS * 4]
    text = text.encode("utf-8", "ignore").decode("utf-8", "ignore")
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_QUERY_CHARS]


def query_words(text: str | None) -> list[str]:
    """The analyzed (lower-cased, stemmed, stop-word-free) words of a query, deduplicated."""
    words: list[str] = []
    for token in TEXT_ANALYZER(sanitize(text)):
        if token.text not in words:
            words.append(token.text)
        if len(words) == MAX_TERMS:
            break
    return words


def corrections(searcher: Searcher, word: str) -> dict[str, list[str]]:
    """Indexed words one edit away from `word`, per text field — only for a word the index
    does not know at all (a known word is taken as meant; this keeps queries cheap)."""
    reader = searcher.reader()
    if len(word) < FUZZY_MIN_LENGTH or any((name, word) in reader for name in TEXT_FIELDS):
        return {}
    found: dict[str, list[str]] = {}
    for name in TEXT_FIELDS:
        terms = sorted(reader.terms_within(name, word, 1, prefix=1))[:MAX_CORRECTIONS]
        if terms:
            found[name] = terms
    return found


def _word_query(word: str, fixes: dict[str, list[str]]) -> Query:
    alternatives: list[Query] = []
    for name, boost in TEXT_FIELDS.items():
        alternatives.append(Term(name, word, boost=boost))
        alternatives.extend(Term(name, t, boost=boost * FUZZY_WEIGHT) for t in fixes.get(name, ()))
    return Or(alternatives)


def text_query(
    words: list[str], fixes: dict[str, dict[str, list[str]]], *, conjunctive: bool = True
) -> Query:
    parts = [_word_query(w, fixes.get(w, {})) for w in words]
    return And(parts) if conjunctive else Or(parts)


# --- per-segment column arrays -------------------------------------------------------------


@dataclass
class _Columns:
    pid: list[int]
    price: list[int]
    rating: list[int]
    created: list[int]
    brand: list[str]
    category: list[str]
    price_bucket: list[int]
    rating_floor: list[int]
    # Every docnum sorted by a sort key, built on first use (the arrays never change).
    orders: dict[str, list[int]] = field(default_factory=dict, repr=False)


def _bucket(price: int) -> int:
    for index, (_, high) in enumerate(PRICE_BUCKETS):
        if high is None or price <= high:
            return index
    return len(PRICE_BUCKETS) - 1


def _segment_columns(reader: Any) -> _Columns:
    def column(name: str) -> list[Any]:
        return list(reader.column_reader(name))

    decoded: dict[bytes, str] = {}

    def text(name: str) -> list[str]:
        out = []
        for raw in reader.column_reader(name):
            value = decoded.get(raw)
            if value is None:
                value = decoded[raw] = raw.decode() if raw else ""
            out.append(value)
        return out

    price, rating = column("price_min"), column("rating")
    return _Columns(
        pid=column("pid"),
        price=price,
        rating=rating,
        created=column("created"),
        brand=text("brand_name"),
        category=text("category_path"),
        price_bucket=[_bucket(p) for p in price],
        rating_floor=[(r - 1) // RATING_SCALE if r else -1 for r in rating],
    )


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


_segments = _Lru(64)  # (index dir, segment id) → _Columns
_views = _Lru(8)  # (index dir, segment ids) → concatenated _Columns
_live = _Lru(8)  # (index dir, generation) → live docnums
_corrections_cache = _Lru(2048)  # (index dir, generation, word) → corrections
_filter_cache = _Lru(256)  # (index dir, generation, filter query) → docnums
_facet_cache = _Lru(512)  # (index dir, generation, words, mode, filter queries) → Facets


def _leaves(searcher: Searcher) -> list[tuple[Any, int]]:
    return list(searcher.reader().leaf_readers())


def _columns(searcher: Searcher, where: str) -> _Columns:
    leaves = [(r, o) for r, o in _leaves(searcher) if r.segment() is not None]
    segment_ids = tuple(reader.segment().segment_id() for reader, _ in leaves)

    def build() -> _Columns:
        parts = [
            _segments.get_or((where, sid), lambda r=reader: _segment_columns(r))
            for sid, (reader, _) in zip(segment_ids, leaves, strict=True)
        ]
        if len(parts) == 1:
            return parts[0]
        if not parts:  # an index with no segments yet
            return _Columns(**{name: [] for name in _FIELDS})
        return _Columns(
            **{name: [v for part in parts for v in getattr(part, name)] for name in _FIELDS}
        )

    return _views.get_or((where, segment_ids), build)


_FIELDS = tuple(name for name in _Columns.__dataclass_fields__ if name != "orders")


# --- the search ----------------------------------------------------------------------------


def _intersect(sets: Iterable[set[int] | frozenset[int]]) -> set[int]:
    ordered = sorted(sets, key=len)
    result = set(ordered[0])
    for other in ordered[1:]:
        result &= other
        if not result:
            break
    return result


def _filter_sets(
    searcher: Searcher,
    columns: _Columns,
    live: frozenset[int],
    *,
    brand: str | None,
    category: str | None,
    min_price: int | None,
    max_price: int | None,
    min_rating: float | None,
    in_stock: bool,
) -> dict[str, frozenset[int]]:
    queries: dict[str, Query] = {}
    if brand and brand.strip():
        queries["brand"] = Term("brand_key", " ".join(brand.split()).lower())
    if category and category.strip():
        path = "/".join(p.strip() for p in category.replace(">", "/").split("/") if p.strip())
        queries["category"] = Term("category_paths", path.lower())
    if in_stock:
        queries["in_stock"] = Term("in_stock", True)
    where, generation = storage.searcher_dir(), searcher.reader().generation()
    sets = {
        name: _filter_cache.get_or(
            (where, generation, repr(q)), lambda q=q: frozenset(searcher.docs_for_query(q))
        )
        for name, q in queries.items()
    }
    # Ranges scan the column arrays (numbers are not indexed as terms).
    if min_price is not None or max_price is not None:
        low, high = min_price or 0, max_price if max_price is not None else 2**63
        price = columns.price
        sets["price"] = _filter_cache.get_or(
            (where, generation, "price", low, high),
            lambda: frozenset(d for d in live if low <= price[d] <= high),
        )
    if min_rating:  # "at least 0 stars" is no filter at all (as in the API)
        floor = 1 + max(0, math.ceil(Decimal(str(min_rating)) * RATING_SCALE))
        rating = columns.rating
        sets["rating"] = _filter_cache.get_or(
            (where, generation, "rating", floor),
            lambda: frozenset(d for d in live if rating[d] >= floor),
        )
    return sets


def _facets(
    columns: _Columns, text_docs: set[int] | frozenset[int], filters: dict[str, frozenset[int]]
) -> Facets:
    def base(skip: str) -> set[int] | frozenset[int]:
        others = [docs for name, docs in filters.items() if name != skip]
        return _intersect([text_docs, *others]) if others else text_docs

    brands = Counter(map(columns.brand.__getitem__, base("brand")))
    leaves = Counter(map(columns.category.__getitem__, base("category")))
    categories: Counter[str] = Counter()
    for path, count in leaves.items():
        if path:
            for ancestor in category_ancestors(path):
                categories[ancestor] += count
    buckets = Counter(map(columns.price_bucket.__getitem__, base("price")))
    floors = Counter(map(columns.rating_floor.__getitem__, base("rating")))

    def top(counter: Counter[str]) -> list[FacetCount]:
        ranked = sorted(((v, c) for v, c in counter.items() if v), key=lambda p: (-p[1], p[0]))
        return [FacetCount(v, c) for v, c in ranked[:MAX_FACET_VALUES]]

    return Facets(
        brand=top(brands),
        category=top(categories),
        price=[
            PriceFacet(low, high, buckets.get(i, 0)) for i, (low, high) in enumerate(PRICE_BUCKETS)
        ],
        rating=[
            RatingFacet(step, sum(c for f, c in floors.items() if f >= step))
            for step in RATING_STEPS
        ],
    )


def _order(columns: _Columns, docs: set[int], sort: str, limit: int) -> list[int]:
    pid, price, rating, created = columns.pid, columns.price, columns.rating, columns.created
    keys: dict[str, Callable[[int], Any]] = {
        "price_asc": lambda d: (price[d], pid[d]),
        "price_desc": lambda d: (-price[d], pid[d]),
        "rating": lambda d: (-rating[d], pid[d]),
    }
    key = keys.get(sort, lambda d: (-created[d], -pid[d]))
    if len(docs) > PRESORTED_ABOVE:
        # Big result sets (browsing): walk the presorted order and keep the first matches.
        order = columns.orders.get(sort)
        if order is None:
            order = columns.orders[sort] = sorted(range(len(pid)), key=key)
        return list(itertools.islice(filter(docs.__contains__, order), limit))
    if limit * 4 < len(docs):
        return heapq.nsmallest(limit, docs, key=key)
    return sorted(docs, key=key)[:limit]


def search(
    q: str | None = "",
    *,
    brand: str | None = None,
    category: str | None = None,
    min_price: int | None = None,
    max_price: int | None = None,
    min_rating: float | None = None,
    in_stock: bool = False,
    sort: str = "relevance",
    page: int = 1,
    per_page: int = 20,
) -> SearchResult:
    """One page of visible products matching `q` and the filters, with facet counts.

    Never raises on odd input: the text is analyzed, not parsed. An empty `q` lists every
    product (with the same filters); `relevance` then means newest first. `category` includes
    its sub-categories; prices are cents (inclusive); `min_rating` is on the average rating.
    """
    page, per_page = max(1, page), max(1, per_page)
    searcher = storage.searcher()
    if searcher is None:
        return SearchResult([], 0, page, per_page, Facets(), matched="none")
    where = storage.searcher_dir()
    generation = searcher.reader().generation()
    columns = _columns(searcher, where)
    live = _live.get_or((where, generation), lambda: frozenset(searcher.reader().all_doc_ids()))
    filters = _filter_sets(
        searcher,
        columns,
        live,
        brand=brand,
        category=category,
        min_price=min_price,
        max_price=max_price,
        min_rating=min_rating,
        in_stock=in_stock,
    )

    words = query_words(q)
    text: Query | None = None
    text_docs: set[int] | frozenset[int] = live
    matched = "all"
    docs: set[int] = _intersect([live, *filters.values()])
    if words:
        fixes = {
            w: _corrections_cache.get_or(
                (where, generation, w), lambda w=w: corrections(searcher, w)
            )
            for w in words
        }
        for conjunctive in (True, False):
            text = text_query(words, fixes, conjunctive=conjunctive)
            text_docs = set(searcher.docs_for_query(text))
            docs = _intersect([text_docs, *filters.values()])
            matched = "and" if conjunctive else "or"
            if docs or len(words) == 1:
                break

    filter_key = (brand, category, min_price, max_price, min_rating, in_stock)
    facet_key = (where, generation, tuple(words), matched, filter_key)
    facets = _facet_cache.get_or(facet_key, lambda: _facets(columns, text_docs, filters))

    offset = (page - 1) * per_page
    total = len(docs)
    if offset >= total:
        return SearchResult([], total, page, per_page, facets, matched)
    limit = min(offset + per_page, total)
    if text is not None and sort == "relevance":
        results = searcher.search(text, filter=docs, limit=limit)
        ranked = [docnum for _, docnum in results.top_n]
    else:
        ranked = _order(columns, docs, sort, limit)
    ids = [columns.pid[d] for d in ranked[offset:limit]]
    return SearchResult(ids, total, page, per_page, facets, matched)


def suggest(q: str | None, limit: int = 8) -> list[str]:
    """Titles of visible products whose words start with what was typed (last word a prefix)."""
    words = [t.text for t in WORD_ANALYZER(sanitize(q))][:MAX_TERMS]
    if not words or len(words[-1]) < 2:
        return []
    searcher = storage.searcher()
    if searcher is None:
        return []
    *complete, partial = words
    query = And([Term("title_words", w) for w in complete] + [Prefix("title_words", partial)])
    results = searcher.search(query, limit=limit * 3)
    titles: list[str] = []
    for hit in results:
        title = hit.get("title")
        if title and title not in titles:
            titles.append(title)
        if len(titles) == limit:
            break
    return titles


def products_in_order(product_ids: list[int]) -> list[Product]:
    """The products behind a result page, in its order; ones no longer visible are dropped
    (their index update is on its way)."""
    if not product_ids:
        return []
    products = db.session.scalars(
        select(Product)
        .join(Vendor, Vendor.id == Product.vendor_id)
        .where(
            Product.id.in_(product_ids),
            Product.status == ProductStatus.ACTIVE,
            Vendor.status == VendorStatus.APPROVED,
        )
        .options(
            selectinload(Product.variants),
            selectinload(Product.vendor),
            selectinload(Product.brand),
            selectinload(Product.category),
        )
    ).all()
    by_id = {p.id: p for p in products}
    return [by_id[i] for i in product_ids if i in by_id]


@dataclass(frozen=True)
class CatalogPage:
    products: list[Product]
    total: int
    facets: Facets


def catalog_page(q: str | None, filters: CatalogFilters) -> CatalogPage:
    """The catalog listing of the API and the storefront: the index's answer with facets.

    Before the index is first built, a listing without words falls back to SQL (no facets);
    a text query then finds nothing rather than failing.
    """
    found = search(
        q,
        brand=filters.brand,
        category=filters.category,
        min_price=filters.min_price,
        max_price=filters.max_price,
        min_rating=filters.min_rating,
        in_stock=filters.in_stock,
        sort=filters.sort,
        page=filters.page,
        per_page=filters.per_page,
    )
    if not found.ready and not query_words(q):
        products, total = browse(filters)
        return CatalogPage(products, total, Facets())
    return CatalogPage(products_in_order(found.product_ids), found.total, found.facets)
