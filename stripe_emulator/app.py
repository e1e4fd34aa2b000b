"""The emulator's WSGI app: `/v1/...` in Stripe's wire format plus the `/_emulator/...` routes."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, InternalServerError

from stripe_emulator.api import handle_api_request, json_response, unrecognized
from stripe_emulator.control import create_control_blueprint
from stripe_emulator.errors import api_error
from stripe_emulator.store import EmulatorState

EXTENSION_KEY = "stripe_emulator"
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Authorization, Content-Type, Idempotency-Key, Stripe-Version, Stripe-Account"
    ),
    "Access-Control-Expose-Headers": "Request-Id, Idempotent-Replayed, Stripe-Should-Retry",
    "Access-Control-Max-Age": "600",
}


def create_emulator_app(
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    *,
    state: EmulatorState | None = None,
    state_file: str | None = None,
    import_state_from: str | None = None,
) -> Flask:
    """A Flask app serving the emulator; its state is `get_state(app)`.

    Webhooks are delivered by a pool of daemon threads started on the first event while
    `webhook_url` is set (it can be changed at any time through the state or
    `/_emulator/webhooks/config`).
    With `state_file`, objects are journaled there and reloaded at the next start
    (`import_state_from`: a whole-state JSON file of older versions, read when there is no
    journal yet).
    """
    state = state or EmulatorState(webhook_url, webhook_secret)
    if state_file:
        state.open_journal(state_file, import_from=import_state_from)
    app = Flask(__name__)
    app.extensions[EXTENSION_KEY] = state

    def stripe_api(rest: str) -> Response:
        if request.method == "OPTIONS":  # CORS preflight, as for Stripe.js in a browser
            return Response(status=204)
        return handle_api_request(state, request)

    app.add_url_rule(
        "/v1/<path:rest>",
        "stripe_api",
        stripe_api,
        methods=["GET", "POST", "DELETE", "OPTIONS"],
        provide_automatic_options=False,
    )
    app.register_blueprint(create_control_blueprint(state))

    @app.after_request
    def cors(response: Response) -> Response:
        if request.path.startswith("/v1/"):
            response.headers.update(_CORS_HEADERS)
        state.commit()  # the /_emulator routes change objects too; /v1 committed already
        return response

    @app.errorhandler(InternalServerError)
    def internal_error(exc: InternalServerError) -> Response:
        """An exception escaped: Stripe's 500 api_error, whatever the route."""
        state.commit()  # whatever the request did before failing is real: keep it
        err = api_error()
        response = json_response(err.status, err.body())
        if request.path.startswith("/v1/"):
            response.headers.update(_CORS_HEADERS)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if request.path.startswith("/_emulator/"):
            return json_response(
                exc.code or 500,
                {"error": {"type": "invalid_request_error", "message": exc.description}},
            )
        err = unrecognized(request.method, request.path)
        return json_response(err.status, err.body())

    return app


def get_state(app: Flask) -> EmulatorState:
    """The `EmulatorState` behind an app made by `create_emulator_app`."""
    return app.extensions[EXTENSION_KEY]
