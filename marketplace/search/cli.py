"""`flask search reindex` and `flask search check`."""

from __future__ import annotations

import click
from flask import Flask


def register_search_commands(app: Flask) -> None:
    search = click.Group("search", help="The product search index.")

    @search.command("reindex")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def reindex(quiet: bool) -> None:
        """Rebuild the index from the database into a new directory and switch to it."""
        from tqdm import tqdm

        from marketplace.search import indexing

        def progress(total: int) -> tqdm:
            return tqdm(total=total, unit="product", disable=quiet)

        report = indexing.reindex(progress)
        click.echo(f"indexed {report.documents} products in {report.seconds:.1f}s → {report.path}")

    @search.command("check")
    @click.option("--limit", default=20, help="Ids to list per kind of disagreement.")
    def check(limit: int) -> None:
        """Report documents that disagree with the database; exit 1 if any."""
        from marketplace.search import indexing

        report = indexing.check()
        click.echo(f"{report.documents} documents in the index")
        for kind in ("missing", "stale", "extra"):
            ids = getattr(report, kind)
            shown = ", ".join(map(str, ids[:limit])) + (" …" if len(ids) > limit else "")
            click.echo(f"{kind}: {len(ids)}" + (f" ({shown})" if ids else ""))
        if not report.ok:
            raise click.exceptions.Exit(1)
        click.echo("index agrees with the database")

    app.cli.add_command(search)
