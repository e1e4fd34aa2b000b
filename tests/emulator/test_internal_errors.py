"""An error inside the emulator answers like Stripe's own (500 `api_error`), never a 404.

Issue 17: an exception outside the endpoints (the state file's save) reached Flask's 500 handler,
which the emulator mapped to 404 "Unrecognized request URL", so the SDK raised
InvalidRequestError for a route that exists, after the object had been created.
"""

from __future__ import annotations

import json

import pytest
import stripe
from flask import Response, request

from stripe_emulator import EmulatorServer

from .helpers import Emulator, http

AUTH = {"Authorization": "Bearer sk_test_x"}


def test_a_bug_before_the_endpoint_is_a_500_api_error(
    server: EmulatorServer, client: stripe.StripeClient
) -> None:
    @server.app.before_request
    def emulator_bug() -> None:
        if request.path == "/v1/refunds" and request.method == "POST":
            raise RuntimeError("an emulator bug")

    status, headers, body = http(
        "POST", f"{server.url}/v1/refunds", form={"charge": "ch_x"}, headers=AUTH
    )
    assert status == 500, body
    assert json.loads(body)["error"]["type"] == "api_error"
    assert headers["Access-Control-Allow-Origin"] == "*"
    with pytest.raises(stripe.APIError) as raised:
        client.v1.refunds.create({"charge": "ch_x"})
    assert raised.value.http_status == 500
    assert not isinstance(raised.value, stripe.InvalidRequestError)


def test_a_bug_after_the_endpoint_ran_is_a_500_and_the_object_is_kept(
    server: EmulatorServer, emu: Emulator
) -> None:
    @server.app.after_request
    def emulator_bug(response: Response) -> Response:
        if request.path == "/v1/accounts" and request.method == "POST":
            raise RuntimeError("an emulator bug after the account was made")
        return response

    url = f"{server.url}/v1/accounts"
    status, _, body = http("POST", url, form={"type": "express"}, headers=AUTH)

    assert status == 500 and json.loads(body)["error"]["type"] == "api_error", body
    assert len(emu.state()["accounts"]) == 1  # as with Stripe: a 500 does not say it did nothing


def test_an_unknown_route_is_still_a_404(server: EmulatorServer) -> None:
    status, _, body = http("POST", f"{server.url}/v1/nothing_here", headers=AUTH)
    assert status == 404
    assert "Unrecognized request URL" in json.loads(body)["error"]["message"]
