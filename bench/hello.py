"""The reference web app of `bench/run.py`: Flask saying hello in JSON, nothing else.

Served by the same gunicorn and the same gunicorn.conf.py as the marketplace, so the ratio of
the two says what the marketplace's own work costs on top of Flask and the server.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def hello() -> Any:
    return jsonify({"hello": "world"})
