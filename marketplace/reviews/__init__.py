"""Verified-purchase reviews of delivered items, vendor replies and rating aggregates."""
