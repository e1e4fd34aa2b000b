"""Journey 5: an admin disables a user through the users page; the user can no longer log in
(the login page refuses them) and the action is on the audit log page, before → after."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.helpers import PASSWORD, make_admin, make_buyer


def test_an_admin_disables_a_user_who_can_no_longer_log_in(pages):
    admin = make_admin()
    buyer = make_buyer()

    # The buyer is logged in before the admin acts.
    shopper = pages.logged_in(buyer.user.email)

    page = pages.logged_in(admin.user.email)
    page.goto("/admin/")
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Users").click()
    page.get_by_label("Email or name").fill(buyer.user.email)
    page.get_by_role("main").get_by_role("button", name="Search").click()
    row = page.get_by_role("row").filter(has_text=buyer.user.email)
    expect(row.get_by_text("active", exact=True)).to_be_visible()
    pages.shot(page, "users-before")
    row.get_by_role("button", name="Disable").click()
    expect(page.get_by_text(f"{buyer.user.email} is disabled")).to_be_visible()
    expect(
        page.get_by_role("row").filter(has_text=buyer.user.email).get_by_text("disabled")
    ).to_be_visible()
    pages.shot(page, "users-after")

    # Their open session has ended …
    shopper.reload()
    expect(shopper.get_by_role("link", name="Log in")).to_be_visible()

    # … and the login form refuses them.
    login = pages.new()
    login.goto("/login")
    login.get_by_label("Email").fill(buyer.user.email)
    login.get_by_label("Password").fill(PASSWORD)
    login.get_by_role("button", name="Log in").click()
    expect(login.get_by_text("Wrong email or password.")).to_be_visible()
    expect(login.get_by_text("Welcome back")).to_have_count(0)
    assert "/login" in login.url
    pages.shot(login, "login-refused")

    # The action is on the audit page, with who did it and what changed.
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
    entry = page.locator("tr[data-action='user.disable']")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(admin.user.email)
    expect(entry).to_contain_text(f"user {buyer.id}")
    expect(entry).to_contain_text('{"active": true}')
    expect(entry).to_contain_text('{"active": false}')
    pages.shot(page, "audit-log")


def test_an_admin_finds_an_order_and_refunds_part_of_it_after_the_preview(pages, api, webhooks):
    from tests.functional.money import paid_order

    paid = paid_order(api, webhooks)
    part = paid["vendor_orders"][0]["id"]
    shipped = api.post(
        f"/vendor/orders/{part}/ship",
        paid["sellers"][0].token,
        json={"carrier": "UPS", "tracking_number": "1Z1"},
    )
    assert shipped.status_code == 200
    admin = make_admin()

    page = pages.logged_in(admin.user.email)
    page.goto("/admin/")
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Orders").click()
    page.get_by_label("Buyer email").fill(paid["buyer"].user.email)
    page.get_by_role("button", name="Find orders").click()
    page.get_by_role("link", name=f"#{paid['order']['id']}").click()
    expect(page.locator("tr[data-kind='capture']")).to_have_count(1)
    pages.shot(page, "order-timeline")

    page.get_by_label("Amount ($)").fill("5.00")
    page.get_by_label("Reason").fill("Box arrived dented")
    page.get_by_role("button", name="Preview refund").click()
    expect(page.get_by_role("heading", name="Refund preview")).to_be_visible()
    pages.shot(page, "refund-preview")
    page.get_by_role("button", name="Refund $5.00").click()
    expect(page.get_by_text("Refund 1 is")).to_be_visible()
    expect(page.locator("tr[data-kind='refund']")).to_contain_text("Box arrived dented")
    pages.shot(page, "refunded")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
    expect(page.locator("tr[data-action='refund.create']")).to_contain_text(admin.user.email)
