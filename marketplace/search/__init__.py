"""Search and discovery on Whoosh: schema, indexer job, queries, facets and suggestions.

`services.search(...)` and `services.suggest(...)` answer queries (read-only, any web worker);
`indexing.product_changed / vendor_changed / stock_changed` are the freshness hooks services
call inside their transaction; `jobs` holds the indexer jobs; `cli` the `flask search` commands.
"""
