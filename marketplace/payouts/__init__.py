"""payouts domain."""
