"""`GET /api/v1/openapi.json`: an OpenAPI 3.1 document of every /api/v1 route.

Paths and methods come from the app's url_map, so a new route appears without anyone
remembering to list it; who may call it comes from the `require` decorator. A small table adds
what the url_map cannot know: a summary, the success status, the request body's pydantic model
(its JSON Schema, 2020-12, is what OpenAPI 3.1 uses) and the query parameters.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from flask import current_app, jsonify
from werkzeug.routing import Rule

from marketplace.api import bp

PREFIX = "/api/v1"
_CONVERTER = re.compile(r"<(?:(?P<converter>[a-zA-Z_]+)(?:\([^>]*\))?:)?(?P<name>[a-zA-Z_]\w*)>")
_PARAM_TYPES = {"int": "integer", "float": "number"}
_PAGE = ("page", "per_page")


@dataclass(frozen=True)
class Op:
    summary: str
    status: int = 200
    body: str | None = None  # "module:Class" of the request body model
    query: tuple[str, ...] = ()
    # A multipart/form-data body instead of JSON: {field name: JSON Schema}; `file` is required.
    form: dict[str, Any] | None = None


_AUTH = "marketplace.api.auth"
_VENDOR = "marketplace.api.vendor"
_CART = "marketplace.api.cart"
_ORDERS = "marketplace.api.orders"
_VENDOR_ORDERS = "marketplace.api.vendor_orders"
_ADMIN_MONEY = "marketplace.api.admin_money"
_ENGAGEMENT = "marketplace.api.engagement"

# Keyed by endpoint (view function name); routes missing here still appear, summarised from
# their docstring or name.
OPERATIONS: dict[str, Op] = {
    "register": Op("Register a buyer or vendor account", 201, f"{_AUTH}:RegisterBody"),
    "create_token": Op("Log in: issue a bearer token (rate limited)", body=f"{_AUTH}:TokenBody"),
    "delete_token": Op("Revoke the bearer token used for this request", 204),
    "me": Op("The authenticated user"),
    "logout_everywhere": Op("End every session and API token of the user", 204),
    "list_tokens": Op("The user's live API tokens, with their last use", query=_PAGE),
    "revoke_token": Op("Revoke one of the user's API tokens", 204),
    "change_password": Op(
        "Change the password (current one required); other sessions and tokens end",
        body=f"{_AUTH}:PasswordChangeBody",
    ),
    "request_password_reset": Op(
        "Email a password-reset link (same answer for unknown emails; rate limited)",
        202,
        f"{_AUTH}:ResetRequestBody",
    ),
    "confirm_password_reset": Op(
        "Set a new password with a reset link's token (single use, 1 hour)",
        body=f"{_AUTH}:ResetBody",
    ),
    "verify_email": Op("Confirm the email address with a link's token", body=f"{_AUTH}:VerifyBody"),
    "resend_verification": Op("Send the email confirmation link again (rate limited)", 202),
    "get_vendor": Op("The vendor's profile"),
    "patch_vendor": Op("Change the vendor's settings", body=f"{_VENDOR}:VendorSettingsPatch"),
    "vendor_onboarding": Op("Start Stripe Connect onboarding"),
    "list_vendor_products": Op("The vendor's products, any status", query=(*_PAGE, "status")),
    "create_product": Op("Create a product with its variants", 201, f"{_VENDOR}:ProductBody"),
    "get_vendor_product": Op("One of the vendor's products, with stock"),
    "patch_product": Op("Change a product", body=f"{_VENDOR}:ProductPatch"),
    "add_variant": Op("Add a variant (SKU) to a product", 201, f"{_VENDOR}:VariantBody"),
    "patch_variant": Op("Change a variant's price or stock", body=f"{_VENDOR}:VariantPatch"),
    "list_product_images": Op("A product's images in gallery order (the first is the cover)"),
    "upload_product_image": Op(
        "Upload a JPEG, PNG or WebP image (at most 5 MB; re-encoded, EXIF removed, 320/800 px)",
        201,
        form={
            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
            "alt_text": {"type": "string", "maxLength": 200},
        },
    ),
    "patch_product_image": Op(
        "Change an image's alt text or move it (position 0 is the cover)",
        body=f"{_VENDOR}:ImagePatch",
    ),
    "delete_product_image": Op("Delete an image and its files", 204),
    "list_vendor_orders": Op("The vendor's orders", query=(*_PAGE, "status")),
    "get_vendor_order": Op("One of the vendor's orders"),
    "ship_vendor_order": Op("Mark a vendor order shipped", body=f"{_VENDOR_ORDERS}:ShipBody"),
    "deliver_vendor_order": Op("Mark a vendor order delivered"),
    "cancel_vendor_order": Op("Cancel a vendor order", body=f"{_VENDOR_ORDERS}:CancelBody"),
    "refund_vendor_order": Op("Refund a vendor order", 201, f"{_VENDOR_ORDERS}:RefundBody"),
    "refund_preview": Op("Preview a refund", query=("amount_cents", "include_shipping")),
    "vendor_earnings": Op("The vendor's earnings and transfers"),
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
    ),
    "get_product": Op("One active product"),
    "suggest": Op("Search suggestions", query=("q",)),
    "get_cart": Op("The buyer's cart"),
    "add_cart_item": Op("Add a variant to the cart", 201, f"{_CART}:AddItemBody"),
    "patch_cart_item": Op(
        "Change a cart line's quantity (0 removes)", body=f"{_CART}:QuantityBody"
    ),
    "delete_cart_item": Op("Remove a cart line"),
    "checkout": Op("Check out the cart (Idempotency-Key header)", 201, f"{_ORDERS}:CheckoutBody"),
    "checkout_quote": Op(
        "Quote the checkout: items, shipping, tax and total per vendor (no side effects)",
        body=f"{_ORDERS}:CheckoutBody",
    ),
    "list_orders": Op("The buyer's orders", query=_PAGE),
    "get_order": Op("One of the buyer's orders"),
    "cancel_order": Op("Cancel what has not shipped"),
    "create_review": Op("Review a delivered item", 201, f"{_ENGAGEMENT}:ReviewBody"),
    "request_return": Op("Ask to return an item", 201, f"{_ENGAGEMENT}:ReturnBody"),
    "admin_list_vendors": Op("Vendors, by status", query=(*_PAGE, "status")),
    "admin_approve_vendor": Op("Approve a vendor"),
    "admin_suspend_vendor": Op("Suspend a vendor"),
    "admin_list_users": Op("User accounts, optionally matching q", query=(*_PAGE, "q")),
    "admin_disable_user": Op("Disable an account: sessions and tokens end, shop suspended"),
    "admin_enable_user": Op("Re-enable a disabled account"),
    "get_default_commission": Op("The platform's default commission"),
    "set_default_commission": Op(
        "Set the default commission", body=f"{_ADMIN_MONEY}:DefaultCommissionBody"
    ),
    "set_vendor_commission": Op(
        "Set or clear a vendor's commission", body=f"{_ADMIN_MONEY}:CommissionBody"
    ),
    "set_category_commission": Op(
        "Set or clear a category's commission", body=f"{_ADMIN_MONEY}:CommissionBody"
    ),
    "admin_reconciliation": Op("Reconcile the ledger with Stripe", query=("from", "to")),
    "admin_retry_transfer": Op("Try a transfer Stripe refused again"),
    "admin_payouts_csv": Op("Transfers and reversals as CSV"),
    "admin_dead_letters": Op("Outbox rows that used up their attempts", query=_PAGE),
    "admin_retry_dead_letter": Op("Retry a dead letter (pending again, attempts reset)"),
    "admin_audit_log": Op(
        "The audit log of admin actions, newest first",
        query=(*_PAGE, "actor", "action", "target_type", "target_id"),
    ),
    "openapi": Op("This document"),
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

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """`/vendor/products/<int:product_id>` → `/vendor/products/{product_id}` + its parameters."""
    parameters: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        schema: dict[str, Any] = {"type": _PARAM_TYPES.get(match["converter"] or "", "string")}
        if schema["type"] == "integer":
            schema["minimum"] = 1
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER.sub(replace, rule), parameters


def _body_schema(path: str, components: dict[str, Any]) -> dict[str, Any] | None:
    """The `$ref` to the model's JSON Schema (added to `components`), or None if it is gone."""
    module_name, _, name = path.partition(":")
    try:
        model = getattr(importlib.import_module(module_name), name)
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    except (ImportError, AttributeError):
        return None
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
        success["content"] = {media: {"schema": {} if media == "text/csv" else {"type": "object"}}}
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


def build_document() -> dict[str, Any]:
    """The whole document, from the current app's url_map."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    rules = sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule)
    for rule in rules:
        if not (rule.rule == PREFIX or rule.rule.startswith(PREFIX + "/")):
            continue
        path, _ = _openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, method.lower(), schemas)
    responses = {
        f"E{code}": {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code, text in _ERROR_STATUSES.items()
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
