"""`python -m marketplace.payments.emulator`: the command line of `python -m stripe_emulator`."""

import sys

from stripe_emulator.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
