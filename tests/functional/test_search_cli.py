"""`flask search reindex` and `flask search check` through the CLI runner."""

from __future__ import annotations

import os
import shutil

import pytest
from sqlalchemy import update

from marketplace.catalog.models import Product, ProductStatus
from marketplace.db import db, transaction
from marketplace.search import index as storage
from marketplace.search import services as search
from tests.helpers import make_product, make_vendor


@pytest.fixture(autouse=True)
def clean_index(app):
    base = storage.base_dir(app)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    yield
    storage.close_searcher(app)
    shutil.rmtree(base, ignore_errors=True)


def test_check_passes_on_a_fresh_index(runner):
    vendor = make_vendor()
    make_product(vendor, title="Rope")
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 0, result.output
    assert "missing: 0" in result.output and "index agrees" in result.output


def test_check_reports_missing_stale_and_extra_documents(runner, app):
    vendor = make_vendor()
    kept = make_product(vendor, title="Carabiner")
    renamed = make_product(vendor, title="Harness")
    hidden = make_product(vendor, title="Helmet")
    dropped = make_product(vendor, title="Chalk bag")
    # Changes that bypassed the services (and so the hooks):
    with transaction():
        db.session.execute(update(Product).where(Product.id == renamed.id).values(title="Belt"))
        db.session.execute(
            update(Product).where(Product.id == hidden.id).values(status=ProductStatus.ARCHIVED)
        )
    with storage.writer_lock():
        ix = storage.open_for_writing()
        with ix.writer() as writer:
            writer.delete_by_term("id", str(dropped.id))

    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 1, result.output
    assert f"missing: 1 ({dropped.id})" in result.output
    assert f"stale: 1 ({renamed.id})" in result.output
    assert f"extra: 1 ({hidden.id})" in result.output
    assert "3 documents" in result.output
    assert kept.id not in {dropped.id, renamed.id, hidden.id}


def test_reindex_builds_a_new_generation_and_switches_to_it(runner, app):
    vendor = make_vendor()
    product = make_product(vendor, title="Quickdraw")
    make_product(vendor, title="Draft rope", status=ProductStatus.DRAFT)
    base = storage.base_dir(app)
    before = os.readlink(base / storage.CURRENT)
    with transaction():
        db.session.execute(update(Product).where(Product.id == product.id).values(title="Belay"))
    assert search.search("belay").total == 0

    result = runner.invoke(args=["search", "reindex"])
    assert result.exit_code == 0, result.output
    assert "indexed 1 products" in result.output
    after = os.readlink(base / storage.CURRENT)
    assert after != before and not os.path.isabs(after)
    assert search.search("belay").product_ids == [product.id]
    assert search.search("quickdraw").total == 0
    assert runner.invoke(args=["search", "check"]).exit_code == 0

    # Two rebuilds later only the live generation and the one before it remain.
    runner.invoke(args=["search", "reindex", "--quiet"])
    runner.invoke(args=["search", "reindex", "--quiet"])
    generations = sorted(p.name for p in base.iterdir() if p.name.startswith("gen-"))
    assert len(generations) == storage.KEEP_GENERATIONS
    assert os.readlink(base / storage.CURRENT) in generations
    assert before not in generations
    assert search.search("belay").product_ids == [product.id]


def test_reindex_from_nothing(runner, app):
    vendor = make_vendor()
    make_product(vendor, title="Crampons")
    shutil.rmtree(storage.base_dir(app))
    storage.close_searcher(app)
    assert not search.search("").ready
    assert runner.invoke(args=["search", "reindex"]).exit_code == 0
    assert search.search("crampon").total == 1
