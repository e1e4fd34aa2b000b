"""The admin audit log: one row per admin action, written in the action's own transaction."""
