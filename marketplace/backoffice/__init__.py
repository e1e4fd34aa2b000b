"""Read models for the admin back office: order search and an order's whole timeline, read
from the tables the buyer's and vendor's paths already write (nothing is added to them)."""
