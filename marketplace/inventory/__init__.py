"""Stock: the only code that changes `on_hand` and `reserved`."""
