"""The money saga: the one package that moves an order's money, calling orders, payments and
payouts together (none of them calls back up).

- `authorize`: one manual-capture PaymentIntent per order (`Payment` requires_payment).
- `webhooks`: Stripe's events, the source of truth: paid, declined, lapsed (authorized →
  canceled), Stripe's capture deadline.
- `capture`: at the first shipment (authorized → capturing → captured, or back to authorized
  when refused); void; settling a part cancelled before shipping.
- `payout`: the vendor's Transfer from the charge (`Transfer` pending → sending → sent).
- `refunds`: refunds, reversals and accepted returns (`Refund` pending → succeeded / failed).
- `jobs`: the RQ entry points the outbox rows name.

Each step records its intent with the state change, calls Stripe outside any transaction with
a key derived from our ids, and records the answer; a refusal is compensated in the same
transaction that records it.
"""

from datetime import timedelta

# A step asked of Stripe longer ago than this, whose answer was never recorded, looks for the
# object Stripe may have made before asking again: Stripe prunes idempotency keys after 24 h,
# and then the same key would make a second transfer or refund.
ANSWER_LOST_AFTER = timedelta(minutes=10)
