"""Search benchmark: a synthetic catalog indexed through the real schema, then timed queries.

    .venv/bin/python bench/search.py                  # 100,000 products (several minutes)
    .venv/bin/python bench/search.py --products 5000  # quick run

No database: products are generated as `ProductFacts` and written with `schema.document`
into a temporary index generation, exactly as the indexer writes them. Prints build time,
size on disk, p50/p95 latency of plain, typo, filtered and faceted queries (result caches
cleared before every query, so these are cold figures; the per-segment column arrays stay
loaded, as they do in a running web worker) and peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask  # noqa: E402

from marketplace.search import index as storage  # noqa: E402
from marketplace.search import services  # noqa: E402
from marketplace.search.schema import ProductFacts, document  # noqa: E402


def _words(text: str) -> list[str]:
    return text.split()


BRANDS = _words(
    "Adidas Nike Puma Reebok Asics Salomon Merrell Columbia Patagonia Arcteryx Levis Wrangler "
    "Uniqlo Zara Carhartt Dickies Timberland Clarks Vans Converse Fila Kappa Umbro Mizuno Brooks "
    "Hoka Saucony Keen Teva Birkenstock Crocs Sorel Ugg Barbour Hunter Fjallraven Osprey Deuter "
    "Gregory Kelty Coleman Stanley Yeti Hydroflask Lodge Tefal Bosch Makita Dewalt Logitech"
)
CATEGORIES = {
    "Clothing": ["Tops", "Bottoms", "Outerwear", "Underwear", "Socks", "Dresses"],
    "Shoes": ["Running", "Hiking", "Casual", "Boots", "Sandals"],
    "Outdoor": ["Tents", "Backpacks", "Sleeping", "Cooking", "Climbing"],
    "Home": ["Kitchen", "Bedding", "Lighting", "Storage"],
    "Tools": ["Power", "Hand", "Garden"],
    "Electronics": ["Audio", "Computers", "Cameras"],
}
NOUNS = {
    "Tops": "tee shirt hoodie sweater polo blouse tank",
    "Bottoms": "jeans chinos shorts leggings joggers trousers",
    "Outerwear": "jacket parka raincoat vest windbreaker fleece",
    "Underwear": "briefs boxers bra undershirt",
    "Socks": "socks liner crew",
    "Dresses": "dress skirt gown",
    "Running": "sneaker trainer racer shoe",
    "Hiking": "hiker shoe approach",
    "Casual": "loafer sneaker slipon moccasin",
    "Boots": "boot chelsea",
    "Sandals": "sandal slide flipflop",
    "Tents": "tent shelter tarp bivy",
    "Backpacks": "backpack daypack rucksack duffel",
    "Sleeping": "sleeping bag pad quilt pillow",
    "Cooking": "stove pot kettle mug skillet",
    "Climbing": "harness carabiner rope helmet quickdraw",
    "Kitchen": "knife pan skillet blender kettle",
    "Bedding": "sheet duvet pillow blanket",
    "Lighting": "lamp lantern bulb headlamp",
    "Storage": "box shelf basket organizer",
    "Power": "drill saw sander grinder",
    "Hand": "hammer wrench screwdriver pliers",
    "Garden": "hose rake shovel pruner",
    "Audio": "headphones speaker earbuds soundbar",
    "Computers": "laptop keyboard mouse monitor",
    "Cameras": "camera lens tripod",
}
ADJECTIVES = _words(
    "lightweight waterproof insulated classic vintage slim relaxed breathable durable compact "
    "premium organic recycled wireless portable heavy cordless stainless merino leather canvas "
    "cotton wool nylon ripstop quilted padded ergonomic foldable ultralight rugged"
)
COLORS = _words("black white red blue green grey navy olive tan brown orange yellow purple pink")
FILLER = _words(
    "designed for everyday use with reinforced seams and a comfortable fit that lasts season "
    "after season made from quality materials tested in the field easy care machine washable "
    "backed by our warranty perfect for travel commuting weekends and the great outdoors"
)


def synthetic(n: int, seed: int = 42) -> Iterator[ProductFacts]:
    rng = random.Random(seed)
    paths = [(top, sub) for top, subs in CATEGORIES.items() for sub in subs]
    start = 1_600_000_000_000_000
    for pid in range(1, n + 1):
        top, sub = rng.choice(paths)
        noun = rng.choice(NOUNS[sub].split())
        brand = rng.choice(BRANDS)
        title = f"{brand} {rng.choice(ADJECTIVES)} {rng.choice(COLORS)} {noun}"
        if rng.random() < 0.4:
            title += f" {rng.choice(ADJECTIVES)}"
        words = rng.choices(FILLER + ADJECTIVES + NOUNS[sub].split(), k=rng.randint(15, 45))
        base = int(rng.lognormvariate(8.3, 1.0))
        prices = tuple(max(100, base + rng.randint(-200, 800)) for _ in range(rng.randint(1, 4)))
        ratings = rng.randint(0, 40) if rng.random() < 0.7 else 0
        yield ProductFacts(
            id=pid,
            title=title,
            description=" ".join(words).capitalize() + ".",
            brand=brand if rng.random() < 0.95 else None,
            category=f"{top}/{sub}" if rng.random() < 0.8 else top,
            vendor_id=rng.randint(1, 400),
            vendor=f"Vendor {rng.randint(1, 400)}",
            prices=prices,
            rating_sum=sum(rng.randint(1, 5) for _ in range(ratings)),
            rating_count=ratings,
            in_stock=rng.random() < 0.9,
            created_micros=start + pid * 1_000_000 + rng.randint(0, 999_999),
        )


def build(base: Path, n: int) -> float:
    started = time.perf_counter()
    generation, ix = storage.new_generation(base)
    writer = ix.writer(limitmb=256)
    for count, facts in enumerate(synthetic(n), 1):
        writer.add_document(**document(facts))
        if count % 10_000 == 0:
            print(f"  … {count:,} documents", flush=True)
    writer.commit(optimize=True)
    storage.switch_to(generation, base)
    return time.perf_counter() - started


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(runs: list[Callable[[], object]]) -> tuple[float, float, float]:
    """p50, p95 and max in milliseconds, result caches cleared before each run."""
    times = []
    for run in runs:
        services._facet_cache.clear()
        services._filter_cache.clear()
        services._corrections_cache.clear()
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    return statistics.median(times), p95, times[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=40, help="queries per kind")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        base = Path(tmp)
        print(f"building an index of {args.products:,} synthetic products in {base}")
        seconds = build(base, args.products)
        size = disk_size(base)
        print(f"index build: {seconds:.1f} s, {size / 1e6:.1f} MB on disk")

        app = Flask("bench")
        app.config["SEARCH_INDEX_DIR"] = str(base)
        rng = random.Random(7)
        nouns = [n for words in NOUNS.values() for n in words.split()]
        with app.app_context():
            started = time.perf_counter()
            services.search("")
            first = (time.perf_counter() - started) * 1000
            print(f"first query (opens the index, loads columns): {first:.0f} ms")

            def typo(word: str) -> str:
                i = rng.randrange(1, len(word))
                return word[:i] + word[i + 1 :] if rng.random() < 0.5 else word[:i] + "x" + word[i:]

            kinds: dict[str, list[Callable[[], object]]] = {
                "plain (2 words, AND)": [
                    (lambda q=f"{rng.choice(COLORS)} {rng.choice(nouns)}": services.search(q))
                    for _ in range(args.runs)
                ],
                "plain (brand + noun)": [
                    (lambda q=f"{rng.choice(BRANDS)} {rng.choice(nouns)}": services.search(q))
                    for _ in range(args.runs)
                ],
                "typo (one edit)": [
                    (lambda q=typo(rng.choice([*BRANDS, *nouns]).lower()): services.search(q))
                    for _ in range(args.runs)
                ],
                "OR fallback (AND finds nothing)": [
                    (lambda q=f"{rng.choice(nouns)} zzqx{rng.randint(0, 999)}": services.search(q))
                    for _ in range(args.runs)
                ],
                "filtered (q + brand + price + in stock)": [
                    (
                        lambda q=rng.choice(nouns), b=rng.choice(BRANDS): services.search(
                            q, brand=b, min_price=1000, max_price=20000, in_stock=True
                        )
                    )
                    for _ in range(args.runs)
                ],
                "faceted browse (no q, category + rating)": [
                    (
                        lambda c=rng.choice(list(CATEGORIES)), r=rng.choice([1, 2, 3, 4]): (
                            services.search("", category=c, min_rating=r, sort="price_asc")
                        )
                    )
                    for _ in range(args.runs)
                ],
                "browse everything, newest, page 5": [
                    (lambda: services.search("", page=5)) for _ in range(args.runs)
                ],
                "suggest (prefix)": [
                    (lambda q=rng.choice(nouns)[:3]: services.suggest(q)) for _ in range(args.runs)
                ],
            }
            print(f"{'query kind':<44}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
            for name, runs in kinds.items():
                p50, p95, worst = timed(runs)
                print(f"{name:<44}{p50:>9.1f}{p95:>9.1f}{worst:>9.1f}")
            storage.close_searcher(app)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
