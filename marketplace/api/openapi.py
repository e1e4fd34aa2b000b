"""`GET /api/v1/openapi.json`: an OpenAPI 3.1 document of every /api/v1 route.

Paths and methods come from the app's url_map, so a new route appears without anyone
remembering to list it; who may call it comes from the `require` decorator. A small table adds
what the url_map cannot know: a summary, the success status, the request body's pydantic model
(its JSON Schema, 2020-12, is what OpenAPI 3.1 uses), the answer's declared shape and the query
parameters.

An answer's shape is the `TypedDict` its presenter is annotated with (`order_json() ->
OrderJson`), so the JSON and its schema come from one declaration; `tests/openapi_check.py`
validates every answer of the functional suite against this document.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from flask import current_app, jsonify
from pydantic import TypeAdapter
from typing_extensions import TypedDict
from werkzeug.routing import Rule

from marketplace.api import bp
from marketplace.api.common import Page
from marketplace.validation import MAX_ID

PREFIX = "/api/v1"
_CONVERTER = re.compile(r"<(?:(?P<converter>[a-zA-Z_]+)(?:\([^>]*\))?:)?(?P<name>[a-zA-Z_]\w*)>")
_PARAM_TYPES = {"int": "integer", "float": "number"}
_PAGE = ("page", "per_page")


class OpenApiDocumentJson(TypedDict):
    """This document (OpenAPI 3.1; its own schema is the OpenAPI Initiative's)."""

    openapi: str
    info: dict[str, Any]
    servers: list[dict[str, Any]]
    paths: dict[str, dict[str, Any]]
    components: dict[str, Any]


@dataclass(frozen=True)
class Op:
    summary: str
    status: int = 200
    body: str | None = None  # "module:Class" of the request body model
    query: tuple[str, ...] = ()
    # A multipart/form-data body instead of JSON: {field name: JSON Schema}; `file` is required.
    form: dict[str, Any] | None = None
    response: str | None = None  # "module:Name" of the answer's TypedDict (or pydantic model)
    page: bool = False  # the answer is `page_of()` a list of `response`


_AUTH = "marketplace.api.auth"
_VENDOR = "marketplace.api.vendor"
_CART = "marketplace.api.cart"
_ORDERS = "marketplace.api.orders"
_VENDOR_ORDERS = "marketplace.api.vendor_orders"
_ADMIN_MONEY = "marketplace.api.admin_money"
_ENGAGEMENT = "marketplace.api.engagement"
_API_CATALOG = "marketplace.api.catalog"
_ADMIN = "marketplace.api.admin"
_OUTBOX = "marketplace.api.admin_outbox"
_ACCOUNTS = "marketplace.accounts.models"
_CATALOG = "marketplace.catalog.models"
_CARTS = "marketplace.cart.services"
_PRESENTERS = "marketplace.orders.presenters"
_QUOTE = "marketplace.orders.quote"
_RETURNS = "marketplace.orders.returns"
_REVIEWS = "marketplace.reviews.services"
_REFUNDS = "marketplace.settlement.refunds"
_EARNINGS = "marketplace.payouts.earnings"
_RECONCILIATION = "marketplace.payouts.reconciliation"
_API_COUPONS = "marketplace.api.coupons"
_COUPONS = "marketplace.coupons.services"

# Keyed by endpoint (view function name); routes missing here still appear, summarised from
# their docstring or name, with a bare object as their answer until `response` names its shape
# (tests/unit/test_openapi_responses.py lists them).
OPERATIONS: dict[str, Op] = {
    "register": Op(
        "Register a buyer or vendor account",
        201,
        f"{_AUTH}:RegisterBody",
        response=f"{_AUTH}:SessionJson",
    ),
    "create_token": Op(
        "Log in: issue a bearer token (rate limited)",
        body=f"{_AUTH}:TokenBody",
        response=f"{_AUTH}:SessionJson",
    ),
    "delete_token": Op("Revoke the bearer token used for this request", 204),
    "me": Op("The authenticated user", response=f"{_AUTH}:UserAnswerJson"),
    "logout_everywhere": Op("End every session and API token of the user", 204),
    "list_tokens": Op(
        "The user's live API tokens, with their last use",
        query=_PAGE,
        response=f"{_ACCOUNTS}:TokenJson",
        page=True,
    ),
    "revoke_token": Op("Revoke one of the user's API tokens", 204),
    "change_password": Op(
        "Change the password (current one required); other sessions and tokens end",
        body=f"{_AUTH}:PasswordChangeBody",
        response=f"{_AUTH}:UserAnswerJson",
    ),
    "request_password_reset": Op(
        "Email a password-reset link (same answer for unknown emails; rate limited)",
        202,
        f"{_AUTH}:ResetRequestBody",
        response=f"{_AUTH}:MessageJson",
    ),
    "confirm_password_reset": Op(
        "Set a new password with a reset link's token (single use, 1 hour)",
        body=f"{_AUTH}:ResetBody",
        response=f"{_AUTH}:UserAnswerJson",
    ),
    "verify_email": Op(
        "Confirm the email address with a link's token",
        body=f"{_AUTH}:VerifyBody",
        response=f"{_AUTH}:UserAnswerJson",
    ),
    "resend_verification": Op(
        "Send the email confirmation link again (rate limited)",
        202,
        response=f"{_AUTH}:MessageJson",
    ),
    "get_vendor": Op("The vendor's profile", response=f"{_CATALOG}:VendorJson"),
    "patch_vendor": Op(
        "Change the vendor's settings",
        body=f"{_VENDOR}:VendorSettingsPatch",
        response=f"{_CATALOG}:VendorJson",
    ),
    "get_shipping_rules": Op(
        "The vendor's shipping terms (docs/shipping.md)",
        response=f"{_VENDOR}:ShippingRulesJson",
    ),
    "put_shipping_rules": Op(
        "Replace the vendor's shipping terms (their version goes up when they change)",
        body=f"{_VENDOR}:ShippingRulesBody",
        response=f"{_VENDOR}:ShippingRulesJson",
    ),
    "vendor_onboarding": Op(
        "Start Stripe Connect onboarding", response=f"{_VENDOR_ORDERS}:OnboardingJson"
    ),
    "list_vendor_products": Op(
        "The vendor's products, any status",
        query=(*_PAGE, "status"),
        response=f"{_CATALOG}:VendorProductJson",
        page=True,
    ),
    "create_product": Op(
        "Create a product with its variants",
        201,
        f"{_VENDOR}:ProductBody",
        response=f"{_CATALOG}:VendorProductJson",
    ),
    "get_vendor_product": Op(
        "One of the vendor's products, with stock", response=f"{_CATALOG}:VendorProductJson"
    ),
    "patch_product": Op(
        "Change a product", body=f"{_VENDOR}:ProductPatch", response=f"{_CATALOG}:VendorProductJson"
    ),
    "add_variant": Op(
        "Add a variant (SKU) to a product",
        201,
        f"{_VENDOR}:VariantBody",
        response=f"{_CATALOG}:VendorVariantJson",
    ),
    "patch_variant": Op(
        "Change a variant's price or stock",
        body=f"{_VENDOR}:VariantPatch",
        response=f"{_CATALOG}:VendorVariantJson",
    ),
    "list_vendor_orders": Op(
        "The vendor's orders",
        query=(*_PAGE, "status"),
        response=f"{_PRESENTERS}:VendorSideOrderJson",
        page=True,
    ),
    "get_vendor_order": Op(
        "One of the vendor's orders", response=f"{_PRESENTERS}:VendorSideOrderJson"
    ),
    "ship_vendor_order": Op(
        "Mark a vendor order shipped",
        body=f"{_VENDOR_ORDERS}:ShipBody",
        response=f"{_PRESENTERS}:VendorSideOrderJson",
    ),
    "deliver_vendor_order": Op(
        "Mark a vendor order delivered", response=f"{_PRESENTERS}:VendorSideOrderJson"
    ),
    "cancel_vendor_order": Op(
        "Cancel a vendor order",
        body=f"{_VENDOR_ORDERS}:CancelBody",
        response=f"{_PRESENTERS}:VendorSideOrderJson",
    ),
    "refund_vendor_order": Op(
        "Refund a vendor order",
        201,
        f"{_VENDOR_ORDERS}:RefundBody",
        response=f"{_REFUNDS}:RefundJson",
    ),
    "refund_preview": Op(
        "Preview a refund",
        query=("amount_cents", "include_shipping"),
        response=f"{_REFUNDS}:RefundPreviewJson",
    ),
    "vendor_earnings": Op(
        "The vendor's earnings and transfers", response=f"{_EARNINGS}:EarningsJson"
    ),
    "list_product_images": Op(
        "A product's images in gallery order (the first is the cover)",
        response=f"{_CATALOG}:ImagesJson",
    ),
    "upload_product_image": Op(
        "Upload a JPEG, PNG or WebP image (at most 5 MB; re-encoded, EXIF removed, 320/800 px)",
        201,
        form={
            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
            "alt_text": {"type": "string", "maxLength": 200},
        },
        response=f"{_CATALOG}:ImageJson",
    ),
    "patch_product_image": Op(
        "Change an image's alt text or move it (position 0 is the cover)",
        body=f"{_VENDOR}:ImagePatch",
        response=f"{_CATALOG}:ImageJson",
    ),
    "delete_product_image": Op("Delete an image and its files", 204),
    "list_products": Op(
        "Search and browse the public catalog",
        query=(
            "q",
            "brand",
            "category",
            "min_price",
            "max_price",
            "min_rating",
            "in_stock",
            "sort",
            *_PAGE,
        ),
        response=f"{_API_CATALOG}:CatalogPageJson",
    ),
    "get_product": Op("One active product", response=f"{_CATALOG}:ProductJson"),
    "suggest": Op("Search suggestions", query=("q",), response=f"{_API_CATALOG}:SuggestionsJson"),
    "get_cart": Op("The buyer's cart", response=f"{_CARTS}:CartJson"),
    "add_cart_item": Op(
        "Add a variant to the cart", 201, f"{_CART}:AddItemBody", response=f"{_CARTS}:CartJson"
    ),
    "patch_cart_item": Op(
        "Change a cart line's quantity (0 removes)",
        body=f"{_CART}:QuantityBody",
        response=f"{_CARTS}:CartJson",
    ),
    "delete_cart_item": Op("Remove a cart line", response=f"{_CARTS}:CartJson"),
    "checkout": Op(
        "Check out the cart (Idempotency-Key header)",
        201,
        f"{_ORDERS}:CheckoutBody",
        response=f"{_ORDERS}:CheckoutJson",
    ),
    "checkout_quote": Op(
        "Quote the checkout: items, shipping, tax and total per vendor (no side effects)",
        body=f"{_ORDERS}:CheckoutBody",
        response=f"{_QUOTE}:QuoteJson",
    ),
    "list_orders": Op(
        "The buyer's orders", query=_PAGE, response=f"{_PRESENTERS}:OrderJson", page=True
    ),
    "get_order": Op("One of the buyer's orders", response=f"{_PRESENTERS}:OrderJson"),
    "cancel_order": Op("Cancel what has not shipped", response=f"{_PRESENTERS}:OrderJson"),
    "create_review": Op(
        "Review a delivered item",
        201,
        f"{_ENGAGEMENT}:ReviewBody",
        response=f"{_REVIEWS}:ReviewJson",
    ),
    "request_return": Op(
        "Ask to return an item", 201, f"{_ENGAGEMENT}:ReturnBody", response=f"{_RETURNS}:ReturnJson"
    ),
    "admin_list_vendors": Op(
        "Vendors, by status", query=(*_PAGE, "status"), response=f"{_CATALOG}:VendorJson", page=True
    ),
    "admin_approve_vendor": Op("Approve a vendor", response=f"{_CATALOG}:VendorJson"),
    "admin_suspend_vendor": Op("Suspend a vendor", response=f"{_CATALOG}:VendorJson"),
    "admin_list_users": Op(
        "User accounts, optionally matching q",
        query=(*_PAGE, "q"),
        response=f"{_ADMIN}:AdminUserJson",
        page=True,
    ),
    "admin_disable_user": Op(
        "Disable an account: sessions and tokens end, shop suspended",
        response=f"{_ADMIN}:AdminUserJson",
    ),
    "admin_enable_user": Op("Re-enable a disabled account", response=f"{_ADMIN}:AdminUserJson"),
    "get_default_commission": Op(
        "The platform's default commission", response=f"{_ADMIN_MONEY}:DefaultCommissionJson"
    ),
    "set_default_commission": Op(
        "Set the default commission",
        body=f"{_ADMIN_MONEY}:DefaultCommissionBody",
        response=f"{_ADMIN_MONEY}:DefaultCommissionJson",
    ),
    "set_vendor_commission": Op(
        "Set or clear a vendor's commission",
        body=f"{_ADMIN_MONEY}:CommissionBody",
        response=f"{_CATALOG}:VendorJson",
    ),
    "set_category_commission": Op(
        "Set or clear a category's commission",
        body=f"{_ADMIN_MONEY}:CommissionBody",
        response=f"{_ADMIN_MONEY}:CategoryCommissionJson",
    ),
    "admin_reconciliation": Op(
        "Reconcile the ledger with Stripe",
        query=("from", "to"),
        response=f"{_RECONCILIATION}:ReconciliationJson",
    ),
    "admin_retry_transfer": Op(
        "Try a transfer Stripe refused again", response=f"{_EARNINGS}:TransferJson"
    ),
    "admin_payouts_csv": Op("Transfers and reversals as CSV"),
    "admin_dead_letters": Op(
        "Outbox rows that used up their attempts",
        query=_PAGE,
        response=f"{_OUTBOX}:OutboxMessageJson",
        page=True,
    ),
    "admin_retry_dead_letter": Op(
        "Retry a dead letter (pending again, attempts reset)",
        response=f"{_OUTBOX}:OutboxMessageJson",
    ),
    "product_reviews": Op(
        "A product's reviews", query=_PAGE, response=f"{_REVIEWS}:ReviewJson", page=True
    ),
    "list_vendor_reviews": Op(
        "Reviews of the vendor's products",
        query=_PAGE,
        response=f"{_REVIEWS}:ReviewJson",
        page=True,
    ),
    "reply_to_review": Op(
        "Reply to a review", body=f"{_ENGAGEMENT}:ReplyBody", response=f"{_REVIEWS}:ReviewJson"
    ),
    "list_vendor_returns": Op(
        "Return requests of the vendor's items (every one, one page)",
        query=("status",),
        response=f"{_RETURNS}:ReturnJson",
        page=True,
    ),
    "accept_return": Op(
        "Accept a return: refund the units",
        body=f"{_ENGAGEMENT}:AcceptReturnBody",
        response=f"{_RETURNS}:ReturnJson",
    ),
    "decline_return": Op(
        "Decline a return",
        body=f"{_ENGAGEMENT}:DeclineReturnBody",
        response=f"{_RETURNS}:ReturnJson",
    ),
    "list_notifications": Op(
        "The user's in-app notifications", response=f"{_ENGAGEMENT}:NotificationsJson"
    ),
    "read_notifications": Op("Mark every notification read", response=f"{_ENGAGEMENT}:MarkedJson"),
    "get_dispute_recovery": Op(
        "How lost disputes are recovered from vendors",
        response=f"{_ADMIN_MONEY}:DisputeRecoveryJson",
    ),
    "set_dispute_recovery": Op(
        "Choose how lost disputes are recovered",
        body=f"{_ADMIN_MONEY}:DisputeRecoveryBody",
        response=f"{_ADMIN_MONEY}:DisputeRecoveryJson",
    ),
    "admin_retry_dispute_return": Op(
        "Send a dispute return Stripe refused again (the share is owed to the vendor until then)",
        response="marketplace.settlement.recovery:RecoveryJson",
    ),
    "admin_retry_void": Op(
        "Try a void Stripe refused again", response=f"{_ADMIN_MONEY}:VoidRetryJson"
    ),
    "admin_audit_log": Op(
        "The audit log of admin actions, newest first",
        query=(*_PAGE, "actor", "action", "target_type", "target_id"),
        response="marketplace.audit.models:AuditEntryJson",
        page=True,
    ),
    "list_vendor_coupons": Op(
        "The vendor's coupons (it funds them; they apply to its lines only)",
        response=f"{_COUPONS}:CouponListJson",
    ),
    "create_vendor_coupon": Op(
        "Create a coupon funded by the vendor",
        201,
        f"{_API_COUPONS}:CouponBody",
        response=f"{_COUPONS}:CouponJson",
    ),
    "patch_vendor_coupon": Op(
        "Change one of the vendor's coupons",
        body=f"{_API_COUPONS}:CouponPatch",
        response=f"{_COUPONS}:CouponJson",
    ),
    "delete_vendor_coupon": Op("Withdraw a coupon (its code and uses stay)", 204),
    "admin_list_coupons": Op(
        "The platform's coupons (its commission pays them)",
        response=f"{_COUPONS}:CouponListJson",
    ),
    "admin_create_coupon": Op(
        "Create a coupon funded by the platform (audited)",
        201,
        f"{_API_COUPONS}:CouponBody",
        response=f"{_COUPONS}:CouponJson",
    ),
    "admin_patch_coupon": Op(
        "Change a platform coupon (audited)",
        body=f"{_API_COUPONS}:CouponPatch",
        response=f"{_COUPONS}:CouponJson",
    ),
    "admin_delete_coupon": Op("Withdraw a platform coupon (audited)", 204),
    "admin_list_tax_rates": Op(
        "Every tax rate: by country and region, standard and reduced, shipping taxed",
        response="marketplace.api.admin_tax:TaxRateListJson",
    ),
    "admin_set_tax_rate": Op(
        "Set one destination's tax rates (added or changed; audited)",
        body="marketplace.api.admin_tax:TaxRateBody",
        response="marketplace.orders.tax:TaxRateJson",
    ),
    "admin_delete_tax_rate": Op("Remove a tax rate (audited)", 204),
    "openapi": Op("This document", response="marketplace.api.openapi:OpenApiDocumentJson"),
}

_RATE_LIMITED = {
    "create_token",
    "change_password",
    "request_password_reset",
    "confirm_password_reset",
    "resend_verification",
}

_QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "page": {"type": "integer", "minimum": 1, "default": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    "min_price": {"type": "integer", "minimum": 0, "description": "cents"},
    "max_price": {"type": "integer", "minimum": 0, "description": "cents"},
    "min_rating": {"type": "number", "minimum": 0, "maximum": 5},
    "in_stock": {"type": "boolean"},
    "amount_cents": {"type": "integer", "minimum": 1},
    "include_shipping": {"type": "boolean"},
    "sort": {"enum": ["relevance", "price_asc", "price_desc", "rating", "newest"]},
    "from": {"type": "string", "format": "date-time"},
    "to": {"type": "string", "format": "date-time"},
}

_ERROR_STATUSES = {
    "400": "Malformed body or wrong JSON types",
    "401": "No or bad bearer token",
    "403": "Wrong role",
    "404": "Missing, or belonging to someone else",
    "409": "State conflict",
    "413": "Body larger than the route accepts",
    "422": "Missing field or value out of range (details.fields)",
    "429": "Rate limited (Retry-After)",
}

# Error codes whose `details` have a declared shape, said in the operations that answer them.
_ERROR_DETAILS = {
    "price_changed": "marketplace.orders.shipping_checks:PriceChangedDetailsJson",
    "destination_not_served": "marketplace.orders.shipping_checks:DestinationNotServedDetailsJson",
}
_ERRORS_OF = {
    "checkout": ("409 price_changed", "422 destination_not_served"),
    "checkout_quote": ("409 price_changed", "422 destination_not_served"),
}
_OTHER_ERRORS = "Any other error (413 too large, 415, 500, 503 ...): the same shape"
_ERROR = "marketplace.errors:ErrorJson"


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """`/vendor/products/<int:product_id>` → `/vendor/products/{product_id}` + its parameters."""
    parameters: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        schema: dict[str, Any] = {"type": _PARAM_TYPES.get(match["converter"] or "", "string")}
        if schema["type"] == "integer":
            schema["minimum"] = 1
            schema["maximum"] = MAX_ID  # larger ids are 404 before any view runs
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER.sub(replace, rule), parameters


_REF = "#/components/schemas/{model}"


def _closed(schema: Any) -> None:
    """Answers' objects list every key: one the shape does not declare is drift, not extra."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _closed(value)
    elif isinstance(schema, list):
        for value in schema:
            _closed(value)


def _body_schema(
    path: str, components: dict[str, Any], *, page: bool = False, answer: bool = False
) -> dict[str, Any] | None:
    """The `$ref` to the model's JSON Schema (added to `components`), or None if it is gone.

    `path` names a pydantic model (request bodies) or any type pydantic can describe, such as a
    presenter's TypedDict; with `page`, the schema is of `page_of()` a list of it.
    """
    module_name, _, name = path.partition(":")
    try:
        model = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return None
    if page:
        model, name = Page[model], f"{name}Page"  # type: ignore[valid-type]
    if hasattr(model, "model_json_schema"):
        schema = model.model_json_schema(ref_template=_REF)
    else:
        schema = TypeAdapter(model).json_schema(ref_template=_REF)
    if page:
        schema["title"] = name
    if answer:
        _closed(schema)
    for nested_name, nested in schema.pop("$defs", {}).items():
        components.setdefault(nested_name, nested)
    components[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def _summary(endpoint: str, view: Any, op: Op | None) -> str:
    if op is not None:
        return op.summary
    doc = (view.__doc__ or "").strip().splitlines()
    return doc[0].rstrip(".") if doc else endpoint.replace("_", " ").capitalize()


def _operation(rule: Rule, method: str, components: dict[str, Any]) -> dict[str, Any]:
    endpoint = rule.endpoint.rpartition(".")[2]
    view = current_app.view_functions[rule.endpoint]
    op = OPERATIONS.get(endpoint)
    _, parameters = _openapi_path(rule.rule)
    for name in op.query if op else ():
        schema = _QUERY_SCHEMAS.get(name, {"type": "string"})
        parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
    if endpoint == "checkout":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            }
        )
    status = (
        op.status if op else (201 if method == "post" and endpoint.startswith("create") else 200)
    )
    success: dict[str, Any] = {"description": "OK" if status != 201 else "Created"}
    if status != 204:
        media = "text/csv" if rule.rule.endswith(".csv") else "application/json"
        answer = (
            _body_schema(op.response, components, page=op.page, answer=True)
            if op and op.response
            else None
        )
        if media == "text/csv":
            answer = {"type": "string"}
        success["content"] = {media: {"schema": answer or {"type": "object"}}}
    if endpoint == "checkout":
        success["description"] = "Created, or the first answer again for a repeated key"
        success["headers"] = {
            "Idempotent-Replayed": {
                "description": "`true` when this answers a repeated Idempotency-Key "
                "(nothing new was placed); absent on the first answer",
                "required": False,
                "schema": {"type": "string", "enum": ["true"]},
            }
        }
    responses: dict[str, Any] = {str(status): success}
    roles = getattr(view, "required_roles", None)
    errors = ["404", "409", "422"]
    if method in {"post", "put", "patch"}:
        errors.insert(0, "400")
    if roles is not None:
        errors[0:0] = ["401", "403"] if roles else ["401"]
    if endpoint in _RATE_LIMITED:
        errors.append("429")
    if op and op.form is not None:
        errors.append("413")
    for code in sorted(errors):
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    responses["default"] = {"$ref": "#/components/responses/Error"}
    operation: dict[str, Any] = {
        "operationId": f"{method}_{endpoint}",
        "summary": _summary(endpoint, view, op),
        "tags": [rule.rule[len(PREFIX) :].strip("/").split("/")[0] or "api"],
        "parameters": parameters,
        "responses": responses,
    }
    if roles is not None:
        operation["security"] = [{"bearer": []}]
        if roles:
            operation["description"] = "Role: " + " or ".join(r.value for r in roles) + "."
    else:
        operation["security"] = []
    if endpoint in _ERRORS_OF:
        said = []
        for error in _ERRORS_OF[endpoint]:
            code = error.split()[1]
            name = _ERROR_DETAILS[code].split(":")[1]
            said.append(f"{error} (details: #/components/schemas/{name})")
        operation["description"] = (
            operation.get("description", "")
            + " Errors with declared details: "
            + "; ".join(said)
            + "."
        ).strip()
    schema = _body_schema(op.body, components) if op and op.body else None
    if op and op.form is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": op.form}
                }
            },
        }
    elif schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    elif method in {"post", "put", "patch"}:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


def build_document() -> OpenApiDocumentJson:
    """The whole document, from the current app's url_map."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    _body_schema(_ERROR, schemas, answer=True)
    for details in _ERROR_DETAILS.values():
        _body_schema(details, schemas, answer=True)
    rules = sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule)
    for rule in rules:
        if not (rule.rule == PREFIX or rule.rule.startswith(PREFIX + "/")):
            continue
        path, _ = _openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, method.lower(), schemas)
    responses = {
        (f"E{code}" if code else "Error"): {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorJson"}}},
        }
        for code, text in {**_ERROR_STATUSES, "": _OTHER_ERRORS}.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Marketplace API",
            "version": "1",
            "description": "Multi-vendor marketplace JSON API. Money is integer cents.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
def openapi() -> Any:
    """This OpenAPI 3.1 document."""
    return jsonify(build_document())
