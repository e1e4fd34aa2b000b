"""Flask CLI commands: thin wrappers over one service call each."""

from __future__ import annotations

import click
from flask import Flask


def register_commands(app: Flask) -> None:
    users = click.Group("users", help="Manage user accounts.")

    @users.command("create-admin")
    @click.argument("email")
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
    @click.option("--name", default="Admin")
    def create_admin(email: str, password: str, name: str) -> None:
        """Create an admin account."""
        from marketplace.accounts.services import create_admin as create
        from marketplace.errors import DomainError

        try:
            user = create(email, password, name)
        except DomainError as error:
            raise click.ClickException(f"{error.message} {error.details or ''}".strip()) from None
        click.echo(f"admin {user.email} created (id {user.id})")

    @click.command("worker")
    @click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
    def worker(burst: bool) -> None:
        """Run an RQ worker (with scheduler) inside the app context."""
        from marketplace.jobs import run_worker

        run_worker(app, burst=burst)

    demo = click.Group("demo", help="Demo data.")

    @demo.command("load")
    def demo_load() -> None:
        """Load the demo accounts, catalog and orders (skipped when the database has users)."""
        from marketplace.demo import load_demo_data
        from marketplace.payments import embedded

        emulator = embedded.start(app, webhook_url=None) if embedded.wanted(app) else None
        try:
            logins = load_demo_data(emulator_url=emulator.url if emulator else None)
        finally:
            if emulator is not None:
                emulator.stop()
        if logins is None:
            click.echo("demo data already loaded; logins: admin@example.com, buyer1@example.com,")
            click.echo("  vendor1@example.com ... (password demo-password)")
            return
        # Embedded, the index jobs went to this process's in-memory queue, gone when it ends: build
        # the index now (with Redis too), so search works from the first request.
        from marketplace.search import indexing

        report = indexing.reindex()
        click.echo(f"search index built: {report.documents} products")
        if emulator is None:
            click.echo(
                "no demo orders: they are paid at the offline emulator (no STRIPE_SECRET_KEY)"
            )
        click.echo("demo logins:")
        for login in logins:
            click.echo(f"  {login.role:<7} {login.email:<24} password: {login.password}")

    @click.command("serve")
    @click.option("--host", default="127.0.0.1")
    @click.option("--port", default=5000, type=int)
    def serve(host: str, port: int) -> None:
        """Serve the site: gunicorn with gunicorn.conf.py when PostgreSQL, Redis and Stripe are
        configured; else (embedded mode) one process that also runs an RQ worker thread."""
        from marketplace import serving
        from marketplace.jobs import start_embedded_worker
        from marketplace.payments import embedded

        if serving.can_use_gunicorn(app):
            click.echo(f"Marketplace on http://{host}:{port}/ (gunicorn, gunicorn.conf.py)")
            serving.exec_gunicorn(host, port)

        if not app.config["REDIS_URL"]:
            start_embedded_worker(app)
            click.echo("embedded mode: in-process Redis stand-in with a worker thread")
        if embedded.wanted(app):
            emulator = embedded.start(app, webhook_url=f"http://{host}:{port}/webhooks/stripe")
            click.echo(f"offline Stripe emulator on {emulator.url} (no STRIPE_SECRET_KEY set)")
        click.echo(f"Marketplace on http://{host}:{port}/")
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True, use_reloader=False)

    app.cli.add_command(users)
    app.cli.add_command(worker)
    app.cli.add_command(demo)
    app.cli.add_command(serve)
    from marketplace.search.cli import register_search_commands

    register_search_commands(app)
