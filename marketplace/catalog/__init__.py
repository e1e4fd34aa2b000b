"""Vendors, products, variants (SKUs), categories and brands."""
