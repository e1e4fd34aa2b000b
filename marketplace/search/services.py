"""Answering catalog queries from the index: full text, filters, sorts, pages and facets.

Plain values in, a dataclass out; read-only (any web worker). How a query runs:

1. The user's text is never parsed as Whoosh syntax: it is cut to `MAX_QUERY_CHARS`, run
   through the same stemming analyzer as the documents, and each word becomes a term over the
   text fields (title boosted highest); a word of 4+ letters that the index does not know
   is widened to the indexed words one edit away (`addidas` → `adidas`).
   Words are ANDed; when that finds nothing, ORed (ARCHITECTURE.md: AND first, OR costs 4×).
2. Each active filter becomes a boolean mask over document numbers: brand, category and
   in-stock from their term postings (read into arrays once per index segment), price and
   rating ranges by comparing column arrays.
3. Results = text ∩ every filter. Each facet counts text ∩ every *other* filter, so choosing a
   brand still shows the other brands' counts. Counting is `numpy.bincount` over sortable
   columns held as numpy arrays (brand and category as integer codes into their distinct
   strings), loaded once per index segment (segments never change) and kept in memory; facet
   counts are cached per index generation.
4. Relevance order comes from Whoosh's scorer restricted to the result set; the other sorts
   use `numpy.lexsort` over the column arrays (a presorted order for big result sets).
"""

from __future__ import annotations

import gc
import itertools
import logging
import math
import threading
import traceback
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import select
from whoosh.query import And, Or, Prefix, Query, Term
from whoosh.searching import Searcher

from marketplace.catalog.models import Product, ProductStatus, Vendor, VendorStatus
from marketplace.catalog.services import PRODUCT_JSON, CatalogFilters, browse
from marketplace.db import db
from marketplace.search import index as storage
from marketplace.search.schema import (
    RATING_SCALE,
    TEXT_ANALYZER,
    TEXT_FIELDS,
    WORD_ANALYZER,
    category_ancestors,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")
SearchUnavailable = storage.SearchUnavailable  # what views catch (search endpoints only)

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

# Exact-match filter fields: their postings are read once per segment, like the columns.
TERM_FIELDS = ("brand_key", "category_paths", "in_stock")
_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_MIN = int(np.iinfo(np.int64).min)

_Postings = dict[str, dict[bytes, np.ndarray]]  # field → term bytes → sorted docnums


@dataclass
class _Columns:
    """Column values by document number: int64 numbers; brand and category as int32 codes
    into `brands` / `categories` (the distinct strings of this segment or view)."""

    pid: np.ndarray
    price: np.ndarray
    rating: np.ndarray
    created: np.ndarray
    brand: np.ndarray
    category: np.ndarray
    price_bucket: np.ndarray
    rating_floor: np.ndarray
    brands: list[str]
    categories: list[str]
    # (docnum offset, postings of one segment) for every segment in this view.
    postings: list[tuple[int, _Postings]] = field(default_factory=list, repr=False)
    # Every docnum sorted by a sort key, built on first use (the arrays never change).
    orders: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


_NUMBERS = ("pid", "price", "rating", "created", "price_bucket", "rating_floor")
_BUCKET_HIGHS = np.array(
    [_INT64_MAX if high is None else high for _, high in PRICE_BUCKETS], dtype=np.int64
)


def _bucket(price: int) -> int:
    for index, (_, high) in enumerate(PRICE_BUCKETS):
        if high is None or price <= high:
            return index
    return len(PRICE_BUCKETS) - 1


def _buckets(price: np.ndarray) -> np.ndarray:
    """`_bucket` of every price: the first bucket whose high end admits it."""
    found = np.searchsorted(_BUCKET_HIGHS, price, side="left")
    return np.minimum(found, len(PRICE_BUCKETS) - 1).astype(np.int8)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # shared between threads and caches
    return array


def _segment_columns(reader: Any) -> _Columns:
    count = reader.doc_count_all()

    def numbers(name: str) -> np.ndarray:
        return np.fromiter(reader.column_reader(name), dtype=np.int64, count=count)

    def codes(name: str) -> tuple[np.ndarray, list[str]]:
        seen: dict[bytes, int] = {}
        array = np.fromiter(
            (seen.setdefault(raw, len(seen)) for raw in reader.column_reader(name)),
            dtype=np.int32,
            count=count,
        )
        return array, [raw.decode() if raw else "" for raw in seen]

    postings: _Postings = {}
    for name in TERM_FIELDS:
        postings[name] = {
            term: _frozen(np.fromiter(reader.postings(name, term).all_ids(), dtype=np.int64))
            for term in reader.lexicon(name)
        }
    price, rating = numbers("price_min"), numbers("rating")
    brand, brands = codes("brand_name")
    category, categories = codes("category_path")
    columns = _Columns(
        pid=numbers("pid"),
        price=price,
        rating=rating,
        created=numbers("created"),
        brand=brand,
        category=category,
        price_bucket=_buckets(price),
        rating_floor=np.where(rating > 0, (rating - 1) // RATING_SCALE, -1),
        brands=brands,
        categories=categories,
        postings=[(0, postings)],
    )
    for name in (*_NUMBERS, "brand", "category"):
        _frozen(getattr(columns, name))
    return columns


def _recode(parts: list[tuple[np.ndarray, list[str]]]) -> tuple[np.ndarray, list[str]]:
    """Concatenate per-segment codes, renumbered into one list of distinct strings."""
    merged: dict[str, int] = {}
    arrays = []
    for array, values in parts:
        table = np.array([merged.setdefault(v, len(merged)) for v in values], dtype=np.int32)
        arrays.append(table[array] if len(array) else array)
    return np.concatenate(arrays), list(merged)


def _concatenate(parts: list[_Columns]) -> _Columns:
    if not parts:  # an index with no segments yet
        empty = np.zeros(0, dtype=np.int64)
        return _Columns(
            **{name: empty for name in _NUMBERS},
            brand=empty.astype(np.int32),
            category=empty.astype(np.int32),
            brands=[],
            categories=[],
        )
    offsets = itertools.accumulate((len(part.pid) for part in parts[:-1]), initial=0)
    brand, brands = _recode([(part.brand, part.brands) for part in parts])
    category, categories = _recode([(part.category, part.categories) for part in parts])
    return _Columns(
        **{name: _frozen(np.concatenate([getattr(p, name) for p in parts])) for name in _NUMBERS},
        brand=_frozen(brand),
        category=_frozen(category),
        brands=brands,
        categories=categories,
        postings=[
            (offset + inner, postings)
            for offset, part in zip(offsets, parts, strict=True)
            for inner, postings in part.postings
        ],
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
_live = _Lru(8)  # (index dir, generation) → mask of live docnums
_corrections_cache = _Lru(2048)  # (index dir, generation, word) → corrections
_filter_cache = _Lru(256)  # (index dir, generation, filter) → mask of docnums
_facet_cache = _Lru(512)  # (index dir, generation, words, mode, filter queries) → Facets


def _leaves(searcher: Searcher) -> list[tuple[Any, int]]:
    return [(r, o) for r, o in searcher.reader().leaf_readers() if r.segment() is not None]


def _columns(searcher: Searcher, where: str) -> _Columns:
    leaves = _leaves(searcher)
    segment_ids = tuple(reader.segment().segment_id() for reader, _ in leaves)

    def build() -> _Columns:
        parts = [
            _segments.get_or((where, sid), lambda r=reader: _segment_columns(r))
            for sid, (reader, _) in zip(segment_ids, leaves, strict=True)
        ]
        return parts[0] if len(parts) == 1 else _concatenate(parts)

    return _views.get_or((where, segment_ids), build)


def _live_mask(searcher: Searcher, size: int) -> np.ndarray:
    live = np.zeros(size, dtype=bool)
    for reader, offset in _leaves(searcher):
        live[offset : offset + reader.doc_count_all()] = True
        if reader.has_deletions():
            deleted = np.fromiter(reader.segment().deleted_docs(), dtype=np.int64)
            live[deleted + offset] = False
    return _frozen(live)


# --- the search ----------------------------------------------------------------------------


def _docs_mask(docnums: Iterable[int], size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[np.fromiter(docnums, dtype=np.int64)] = True
    return mask


def _term_mask(searcher: Searcher, columns: _Columns, name: str, value: Any) -> np.ndarray:
    """The documents having term `value` in field `name`, as `Term(name, value)` finds them."""
    try:
        text = searcher.schema[name].to_bytes(value)
    except ValueError:
        text = None
    mask = np.zeros(len(columns.pid), dtype=bool)
    for offset, postings in columns.postings:
        docnums = postings[name].get(text) if text is not None else None
        if docnums is not None:
            mask[docnums + offset] = True
    return _frozen(mask)


def _filter_masks(
    searcher: Searcher,
    columns: _Columns,
    *,
    brand: str | None,
    category: str | None,
    min_price: int | None,
    max_price: int | None,
    min_rating: float | None,
    in_stock: bool,
) -> dict[str, np.ndarray]:
    terms: dict[str, tuple[str, Any]] = {}
    if brand and brand.strip():
        terms["brand"] = ("brand_key", " ".join(brand.split()).lower())
    if category and category.strip():
        path = "/".join(p.strip() for p in category.replace(">", "/").split("/") if p.strip())
        terms["category"] = ("category_paths", path.lower())
    if in_stock:
        terms["in_stock"] = ("in_stock", True)
    where, generation = storage.searcher_dir(), searcher.reader().generation()
    masks = {
        name: _filter_cache.get_or(
            (where, generation, term), lambda term=term: _term_mask(searcher, columns, *term)
        )
        for name, term in terms.items()
    }
    # Ranges compare the column arrays (numbers are not indexed as terms).
    if min_price is not None or max_price is not None:
        low, high = min_price or 0, max_price if max_price is not None else 2**63
        # Column values are int64: clamping the bounds to that range changes no comparison.
        low, high = min(max(low, _INT64_MIN), _INT64_MAX), min(max(high, _INT64_MIN), _INT64_MAX)
        price = columns.price
        masks["price"] = _filter_cache.get_or(
            (where, generation, "price", low, high),
            lambda: _frozen((price >= low) & (price <= high)),
        )
    if min_rating:  # "at least 0 stars" is no filter at all (as in the API)
        floor = 1 + max(0, math.ceil(Decimal(str(min_rating)) * RATING_SCALE))
        floor = min(floor, _INT64_MAX)
        rating = columns.rating
        masks["rating"] = _filter_cache.get_or(
            (where, generation, "rating", floor), lambda: _frozen(rating >= floor)
        )
    return masks


def _all_of(first: np.ndarray, others: Iterable[np.ndarray]) -> np.ndarray:
    result = first
    for other in others:
        result = result & other
    return result


def _facets(columns: _Columns, text_docs: np.ndarray, filters: dict[str, np.ndarray]) -> Facets:
    def base(skip: str) -> np.ndarray:
        return _all_of(text_docs, (docs for name, docs in filters.items() if name != skip))

    def counts(codes: np.ndarray, skip: str, size: int) -> np.ndarray:
        return np.bincount(codes[base(skip)], minlength=size)

    brands = counts(columns.brand, "brand", len(columns.brands))
    leaves = counts(columns.category, "category", len(columns.categories))
    categories: Counter[str] = Counter()
    for code in np.flatnonzero(leaves).tolist():
        path = columns.categories[code]
        if path:
            for ancestor in category_ancestors(path):
                categories[ancestor] += int(leaves[code])
    buckets = counts(columns.price_bucket, "price", len(PRICE_BUCKETS)).tolist()
    # rating_floor is -1 (unrated) … 5; shifted by one so bincount can count it.
    floors = np.bincount(columns.rating_floor[base("rating")] + 1).tolist()

    def top(pairs: Iterable[tuple[str, int]]) -> list[FacetCount]:
        ranked = sorted(((v, c) for v, c in pairs if v and c), key=lambda p: (-p[1], p[0]))
        return [FacetCount(v, c) for v, c in ranked[:MAX_FACET_VALUES]]

    return Facets(
        brand=top(zip(columns.brands, brands.tolist(), strict=True)),
        category=top(categories.items()),
        price=[PriceFacet(low, high, buckets[i]) for i, (low, high) in enumerate(PRICE_BUCKETS)],
        rating=[RatingFacet(step, sum(floors[step + 1 :])) for step in RATING_STEPS],
    )


def _sort_keys(columns: _Columns, sort: str, at: np.ndarray | slice) -> tuple[np.ndarray, ...]:
    """`numpy.lexsort` keys (last one primary) of a sort for the docnums `at`; product id
    breaks ties."""
    pid = columns.pid[at]
    if sort == "price_asc":
        return pid, columns.price[at]
    if sort == "price_desc":
        return pid, -columns.price[at]
    if sort == "rating":
        return pid, -columns.rating[at]
    return -pid, -columns.created[at]  # newest (and relevance without words)


def _order(columns: _Columns, docs: np.ndarray, total: int, sort: str, limit: int) -> np.ndarray:
    if sort not in ("price_asc", "price_desc", "rating"):
        sort = "newest"
    if total > PRESORTED_ABOVE:
        # Big result sets (browsing): walk the presorted order and keep the first matches.
        order = columns.orders.get(sort)
        if order is None:
            keys = _sort_keys(columns, sort, slice(None))
            order = columns.orders[sort] = _frozen(np.lexsort(keys))
        return order[docs[order]][:limit]
    found = np.flatnonzero(docs)
    return found[np.lexsort(_sort_keys(columns, sort, found))][:limit]


def _reading(read: Callable[[Searcher], _T], empty: _T) -> _T:
    """`read(searcher)` on this thread's searcher (`empty` before the first build).

    Anything the index raises (a reader closed under us, files of a generation swapped away,
    a corrupt segment, a writer mid-merge) drops the cached searcher and tries once more on a
    fresh one; if that fails too, one log record and `SearchUnavailable` (503), never a 500.

    :raises SearchUnavailable:
    """
    failures: list[Exception] = []
    try:
        for _ in range(2):
            try:
                searcher = storage.searcher()
                if searcher is None:
                    return empty
                return read(searcher)
            except Exception as error:  # the engine's errors have no common base class
                failures.append(error)
                storage.close_searcher()
        # The traceback as text: a record holding the frames would keep the leaked files open.
        log.error("search unavailable:\n%s", "".join(traceback.format_exception(failures[-1])))
        raise storage.SearchUnavailable() from failures[-1]
    finally:
        if failures:
            _release(failures)


def _release(failures: list[Exception]) -> None:
    """Whoosh leaves a segment's file open when opening it fails (a corrupt or vanished
    compound file); the frames of the failure hold it. Drop the tracebacks and collect, so a
    broken index does not leak a descriptor per request."""
    for error in failures:
        seen: BaseException | None = error
        while seen is not None:
            seen.__traceback__ = None
            seen = seen.__cause__ or seen.__context__
    failures.clear()
    gc.collect()


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

    :raises SearchUnavailable: the index cannot be read (even on a freshly opened searcher).
    """
    page, per_page = max(1, page), max(1, per_page)
    return _reading(
        lambda searcher: _search_in(
            searcher,
            q,
            filter_args=(brand, category, min_price, max_price, min_rating, in_stock),
            sort=sort,
            page=page,
            per_page=per_page,
        ),
        SearchResult([], 0, page, per_page, Facets(), matched="none"),
    )


def _search_in(
    searcher: Searcher,
    q: str | None,
    *,
    filter_args: tuple[str | None, str | None, int | None, int | None, float | None, bool],
    sort: str,
    page: int,
    per_page: int,
) -> SearchResult:
    brand, category, min_price, max_price, min_rating, in_stock = filter_args
    where = storage.searcher_dir()
    generation = searcher.reader().generation()
    columns = _columns(searcher, where)
    size = len(columns.pid)
    live = _live.get_or((where, generation), lambda: _live_mask(searcher, size))
    filters = _filter_masks(
        searcher,
        columns,
        brand=brand,
        category=category,
        min_price=min_price,
        max_price=max_price,
        min_rating=min_rating,
        in_stock=in_stock,
    )

    words = query_words(q)
    text: Query | None = None
    text_docs = live
    matched = "all"
    docs = _all_of(live, filters.values())
    if words:
        fixes = {
            w: _corrections_cache.get_or(
                (where, generation, w), lambda w=w: corrections(searcher, w)
            )
            for w in words
        }
        for conjunctive in (True, False):
            text = text_query(words, fixes, conjunctive=conjunctive)
            text_docs = _docs_mask(searcher.docs_for_query(text), size)
            docs = _all_of(text_docs, filters.values())
            matched = "and" if conjunctive else "or"
            if docs.any() or len(words) == 1:
                break

    filter_key = (brand, category, min_price, max_price, min_rating, in_stock)
    facet_key = (where, generation, tuple(words), matched, filter_key)
    facets = _facet_cache.get_or(facet_key, lambda: _facets(columns, text_docs, filters))

    offset = (page - 1) * per_page
    total = int(np.count_nonzero(docs))
    if offset >= total:
        return SearchResult([], total, page, per_page, facets, matched)
    limit = min(offset + per_page, total)
    if text is not None and sort == "relevance":
        allowed = set(np.flatnonzero(docs).tolist())
        results = searcher.search(text, filter=allowed, limit=limit)
        ranked = np.array([docnum for _, docnum in results.top_n], dtype=np.int64)
    else:
        ranked = _order(columns, docs, total, sort, limit)
    ids = columns.pid[ranked[offset:limit]].tolist()
    return SearchResult(ids, total, page, per_page, facets, matched)


def suggest(q: str | None, limit: int = 8) -> list[str]:
    """Titles of visible products whose words start with what was typed (last word a prefix).

    :raises SearchUnavailable: the index cannot be read.
    """
    words = [t.text for t in WORD_ANALYZER(sanitize(q))][:MAX_TERMS]
    if not words or len(words[-1]) < 2:
        return []
    *complete, partial = words
    query = And([Term("title_words", w) for w in complete] + [Prefix("title_words", partial)])

    def titles_from(searcher: Searcher) -> list[str]:
        titles: list[str] = []
        for hit in searcher.search(query, limit=limit * 3):
            title = hit.get("title")
            if title and title not in titles:
                titles.append(title)
            if len(titles) == limit:
                break
        return titles

    return _reading(titles_from, [])


def products_in_order(product_ids: list[int]) -> list[Product]:
    """The products behind a result page, in its order; ones no longer visible are dropped
    (their index update is on its way)."""
    if not product_ids:
        return []
    products = (
        db.session.scalars(
            select(Product)
            .join(Vendor, Vendor.id == Product.vendor_id)
            .where(
                Product.id.in_(product_ids),
                Product.status == ProductStatus.ACTIVE,
                Vendor.status == VendorStatus.APPROVED,
            )
            .options(*PRODUCT_JSON)
        )
        .unique()
        .all()
    )
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
