"""Coupons: codes a buyer enters at checkout for a discount, funded by the platform or a vendor."""
