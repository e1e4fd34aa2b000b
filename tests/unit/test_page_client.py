"""The page-test browser refuses posts that no fetched page offers (issue 10: a page test
cannot pass while the page lacks the control it posts from)."""

from __future__ import annotations

import pytest
from flask import Flask, request

from tests.helpers import PageClient, submit

PAGE = """<!doctype html><html><body>
<form method="post" action="/things/1/rename">
  <input type="hidden" name="csrf_token" value="t">
  <input name="title" value="Old">
  <input name="locked" value="x" disabled>
  <select name="size"><option value="s">S</option><option selected value="m">M</option></select>
  <button type="submit">Rename</button>
</form>
<form method="post"><input name="note"></form>
</body></html>"""


@pytest.fixture
def browser() -> PageClient:
    app = Flask(__name__)

    @app.get("/things/1")
    def page() -> str:
        return PAGE

    @app.post("/things/1/rename")
    @app.post("/things/1/delete")
    @app.post("/things/1")
    def action() -> str:
        return ",".join(sorted(request.form))

    app.test_client_class = PageClient
    return app.test_client()


def test_a_post_before_any_page_is_refused(browser: PageClient) -> None:
    with pytest.raises(AssertionError, match="no page this client fetched"):
        browser.post("/things/1/rename", data={"title": "New"})


def test_posting_to_an_action_not_on_the_page_fails(browser: PageClient) -> None:
    browser.get("/things/1")
    with pytest.raises(AssertionError, match="POST /things/1/delete: no page"):
        browser.post("/things/1/delete")


def test_posting_an_unknown_field_fails(browser: PageClient) -> None:
    browser.get("/things/1")
    with pytest.raises(AssertionError, match=r"no field\(s\) \['owner'\]"):
        browser.post("/things/1/rename", data={"title": "New", "owner": "me"})


def test_a_disabled_control_cannot_be_sent(browser: PageClient) -> None:
    browser.get("/things/1")
    with pytest.raises(AssertionError, match="locked"):
        browser.post("/things/1/rename", data={"locked": "y"})


def test_json_and_other_methods_are_not_forms(browser: PageClient) -> None:
    browser.get("/things/1")
    with pytest.raises(AssertionError, match="JSON"):
        browser.post("/things/1/rename", json={"title": "New"})
    with pytest.raises(AssertionError, match="GET or POST"):
        browser.delete("/things/1/rename")


def test_the_forms_fields_are_accepted(browser: PageClient) -> None:
    page = browser.get("/things/1")
    assert browser.post("/things/1/rename", data={"csrf_token": "t", "title": "N"}).text == (
        "csrf_token,title"
    )
    assert submit(browser, page, "/things/1/rename", title="New").text == "csrf_token,size,title"
    # A form without an action posts to the page's own URL.
    assert browser.post("/things/1", data={"note": "hi"}).text == "note"


def test_post_raw_is_the_named_escape_hatch(browser: PageClient) -> None:
    assert browser.post_raw("/things/1/delete", data={"anything": "1"}).text == "anything"


def test_a_select_sends_its_selected_option_and_only_its_options(browser: PageClient) -> None:
    app = browser.application

    @app.post("/things/1/echo")
    def echo() -> str:
        return request.form["size"]

    page = browser.get("/things/1")
    page_echo = PAGE.replace("/things/1/rename", "/things/1/echo")
    app.view_functions["page"] = lambda: page_echo
    page = browser.get("/things/1")
    assert submit(browser, page, "/things/1/echo").text == "m"
    assert submit(browser, page, "/things/1/echo", size="s").text == "s"
    with pytest.raises(AssertionError, match="size=xl is not an option"):
        submit(browser, page, "/things/1/echo", size="xl")
