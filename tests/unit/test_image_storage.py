"""Both storages answer put / get / delete the same way; keys cannot leave their root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from marketplace.images.storage import ImageStorage, LocalStorage, S3Storage, build
from tests.s3_server import s3_server


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ImageStorage]:
    if request.param == "local":
        yield build({"IMAGE_STORAGE": "local", "IMAGE_UPLOAD_DIR": str(tmp_path / "uploads")})
        return
    with s3_server(monkeypatch) as settings:
        yield build(settings)


def test_put_get_delete(store: ImageStorage) -> None:
    key = "products/7/abc-320.jpg"
    assert store.get(key) is None
    store.put(key, b"\xff\xd8jpeg bytes", "image/jpeg")
    assert store.get(key) == b"\xff\xd8jpeg bytes"
    store.put(key, b"\xff\xd8jpeg bytes", "image/jpeg")  # the same content-hashed key again
    store.delete(key)
    assert store.get(key) is None
    store.delete(key)  # already gone: not an error


@pytest.mark.parametrize("key", ["../secret.jpg", "/etc/x.jpg", "a//b.jpg", "a/./b.jpg", ""])
def test_keys_cannot_escape(store: ImageStorage, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x", "image/jpeg")
    with pytest.raises(ValueError):
        store.get(key)


def test_local_files_live_under_the_upload_dir(tmp_path: Path) -> None:
    store = build({"IMAGE_STORAGE": "local", "IMAGE_UPLOAD_DIR": str(tmp_path)})
    assert isinstance(store, LocalStorage)
    store.put("products/1/f-800.png", b"png", "image/png")
    assert (tmp_path / "products/1/f-800.png").read_bytes() == b"png"
    assert [p.name for p in (tmp_path / "products/1").iterdir()] == ["f-800.png"]  # no temp left


def test_s3_objects_carry_type_cache_headers_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    with s3_server(monkeypatch) as settings:
        store = build(settings)
        assert isinstance(store, S3Storage)
        store.put("products/1/f-320.webp", b"RIFFwebp", "image/webp")
        head: dict[str, Any] = store.client.head_object(
            Bucket=settings["IMAGE_S3_BUCKET"], Key="shop/products/1/f-320.webp"
        )
        assert head["ContentType"] == "image/webp"
        assert head["CacheControl"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    "settings",
    [{"IMAGE_STORAGE": "ftp"}, {"IMAGE_STORAGE": "s3", "IMAGE_S3_BUCKET": ""}],
)
def test_bad_settings_fail_at_start(settings: dict[str, str]) -> None:
    with pytest.raises(RuntimeError):
        build(settings)
