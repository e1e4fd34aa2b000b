"""Vendor dashboard pages."""
