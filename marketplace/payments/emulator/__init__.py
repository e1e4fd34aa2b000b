"""The Stripe emulator moved to the top-level package `stripe_emulator` (a tool, not a domain).

This shim keeps old imports and `python -m marketplace.payments.emulator` working.
"""

from stripe_emulator import *  # noqa: F403
from stripe_emulator import __all__  # noqa: F401
