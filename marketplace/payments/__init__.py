"""payments domain."""
