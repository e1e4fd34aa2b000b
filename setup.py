"""Packaging beyond what pyproject.toml can say: templates/, static/ and migrations/ live beside
the package in the checkout but are installed inside it (`marketplace/templates`, ...), so a
non-editable `pip install .` finds them as package data."""

from setuptools import find_packages, setup

ASSETS = {
    "marketplace.templates": "templates",
    "marketplace.static": "static",
    "marketplace.migrations": "migrations",
}

setup(
    packages=[*find_packages(include=["marketplace*", "stripe_emulator*"]), *ASSETS],
    package_dir=ASSETS,
    package_data={name: ["**/*"] for name in ASSETS},
    exclude_package_data={name: ["**/__pycache__/*", "**/*.pyc"] for name in ASSETS},
)
