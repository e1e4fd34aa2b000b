"""Forgetting a password: ask for a link on the login page, follow the emailed link, choose a
new password, log in with it; the link works once."""

from __future__ import annotations

import email
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.helpers import make_buyer

NEW_PASSWORD = "a brand new passphrase"


def _emailed_link(mail_dir: str) -> str:
    (path,) = Path(mail_dir).glob("password_reset_*.eml")
    message = email.message_from_bytes(path.read_bytes())
    text = next(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )
    match = re.search(r"https?://\S+/password/reset/\S+", text)
    assert match, text
    return match.group(0)


def test_a_forgotten_password_is_reset_through_the_emailed_link(app, pages, site):
    buyer = make_buyer()
    page = pages.new()
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(buyer.user.email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_text("If an account has that email")).to_be_visible()
    pages.shot(page, "link-sent")

    link = _emailed_link(app.config["MAIL_DIR"])
    assert link.startswith(site + "/password/reset/")
    page.goto(link)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_text("Log in with the new one")).to_be_visible()

    page.get_by_label("Email").fill(buyer.user.email)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Welcome back")).to_be_visible()
    pages.shot(page, "logged-in")

    again = pages.new()
    again.goto(link)
    expect(again.get_by_text("not valid or was used already")).to_be_visible()
