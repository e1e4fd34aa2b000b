"""The vendor's CSV import and the admin's audit log filters, in Chromium.

A vendor uploads a file with a bad row through the import page (nothing is imported, each row
says why), then the corrected file (each row says created or updated). Two admins act on two
users through the users page; the audit log's filters (admin, action, target) narrow the
entries to the ones asked for. (The order lookup → refund with its preview is
test_admin_back_office.py.)"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from marketplace.catalog import services as catalog
from marketplace.catalog.models import ProductStatus, Variant
from marketplace.db import db
from tests.helpers import make_admin, make_buyer, make_vendor

HEADER = "product_key,title,description,category,brand,status,sku,price,stock,attributes\n"
ROWS = (
    "tee,Basic Tee,Soft cotton,Clothing/Tops,Acme,active,TEE-M,19.99,12,size=M\n"
    "tee,Basic Tee,,,,,TEE-L,21.50,8,size=L\n"
    "mug,Enamel Mug,,Kitchen,,draft,MUG-1,{mug_price},40,\n"
    ",Old Lamp,,,,,LAMP-1,45.00,3,\n"
)


def _csv(folder: Path, name: str, mug_price: str) -> Path:
    path = folder / name
    path.write_text(HEADER + ROWS.format(mug_price=mug_price), encoding="utf-8")
    return path


def _result_row(page, sku: str):
    return page.locator("table.import-result tbody tr").filter(has_text=sku)


def test_a_vendor_imports_a_csv_file_and_sees_each_rows_result(pages, tmp_path):
    vendor = make_vendor("Importer")
    catalog.create_product(
        vendor.vendor.id,
        catalog.ProductInput(
            title="Old Lamp",
            description="",
            brand=None,
            category=None,
            status=ProductStatus.ACTIVE,
            variants=[catalog.VariantInput(sku="LAMP-1", price_cents=4000, stock=1)],
        ),
    )
    page = pages.logged_in(vendor.user.email)
    page.goto("/vendor/")
    page.get_by_role("navigation", name="Shop").get_by_role("link", name="Products").click()
    page.get_by_role("link", name="Import CSV").click()
    expect(page.get_by_role("heading", name="Import products from a CSV file")).to_be_visible()

    # A file with one bad price: nothing is imported, the row says why, the others would pass.
    page.get_by_label("CSV file").set_input_files(_csv(tmp_path, "bad.csv", "nine"))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Nothing was imported")).to_be_visible()
    expect(_result_row(page, "MUG-1")).to_contain_text("error")
    expect(_result_row(page, "MUG-1")).to_contain_text("price")
    expect(_result_row(page, "TEE-M")).to_contain_text("would be created")
    expect(_result_row(page, "LAMP-1")).to_contain_text("would be updated")
    pages.shot(page, "import-refused")
    db.session.rollback()
    skus = set(db.session.scalars(select(Variant.sku)))
    assert skus == {"LAMP-1"}

    # The corrected file: every row created or updated.
    page.get_by_label("CSV file").set_input_files(_csv(tmp_path, "good.csv", "9.50"))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Imported: 3 variants created, 1 updated.")).to_be_visible()
    for sku in ("TEE-M", "TEE-L", "MUG-1"):
        expect(_result_row(page, sku)).to_contain_text("created")
    expect(_result_row(page, "LAMP-1")).to_contain_text("updated")
    pages.shot(page, "import-done")
    db.session.rollback()
    prices = {
        sku: price for sku, price in db.session.execute(select(Variant.sku, Variant.price_cents))
    }
    assert prices == {"TEE-M": 1999, "TEE-L": 2150, "MUG-1": 950, "LAMP-1": 4500}

    page.get_by_role("navigation", name="Shop").get_by_role("link", name="Products").click()
    expect(page.get_by_role("row").filter(has_text="Basic Tee")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Enamel Mug")).to_be_visible()
    pages.shot(page, "vendor-products")


def _toggle_user(page, email: str, button: str) -> None:
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Users").click()
    page.get_by_label("Email or name").fill(email)
    page.get_by_role("main").get_by_role("button", name="Search").click()
    page.get_by_role("row").filter(has_text=email).get_by_role("button", name=button).click()
    expect(page.get_by_text(f"{email} is {button.lower()}d")).to_be_visible()


def test_an_admin_narrows_the_audit_log_with_its_filters(pages):
    first, second = make_admin(), make_admin()
    ann, bob = make_buyer("Ann"), make_buyer("Bob")

    page = pages.logged_in(first.user.email)
    page.goto("/admin/")
    _toggle_user(page, ann.user.email, "Disable")
    _toggle_user(page, ann.user.email, "Enable")
    other = pages.logged_in(second.user.email)
    other.goto("/admin/")
    _toggle_user(other, bob.user.email, "Disable")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
    entries = page.locator("table.audit-log tbody tr[data-action]")
    expect(entries).to_have_count(3)
    pages.shot(page, "audit-all")

    # By admin: only the second admin's action.
    page.get_by_label("Admin (email or id)").fill(second.user.email)
    page.get_by_role("button", name="Filter").click()
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text(f"user {bob.id}")
    expect(page.get_by_text("1 entry.")).to_be_visible()
    pages.shot(page, "audit-by-admin")

    # By action, every admin.
    page.get_by_label("Admin (email or id)").fill("")
    page.get_by_label("Action").select_option("user.disable")
    page.get_by_role("button", name="Filter").click()
    expect(entries).to_have_count(2)
    for row in entries.all():
        expect(row).to_have_attribute("data-action", "user.disable")

    # By target: both changes to Ann, newest first.
    page.get_by_label("Action").select_option("")
    page.get_by_label("Target type").fill("user")
    page.get_by_label("Target id").fill(str(ann.id))
    page.get_by_role("button", name="Filter").click()
    expect(entries).to_have_count(2)
    expect(entries.nth(0)).to_have_attribute("data-action", "user.enable")
    expect(entries.nth(1)).to_have_attribute("data-action", "user.disable")
    pages.shot(page, "audit-by-target")

    # Filters that match nothing say so.
    page.get_by_label("Admin (email or id)").fill(second.user.email)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No entries.")).to_be_visible()
    expect(page.get_by_text("0 entries.")).to_be_visible()
