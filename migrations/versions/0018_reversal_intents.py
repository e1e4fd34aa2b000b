"""reversals: each transfer reversal asked of Stripe is its own intent row; attempts per retry

A refund's reversal was two columns of the refund (`stripe_reversal_id`,
`reversal_failure_reason`) and a dispute share's one column of the recovery. Each becomes a
`reversals` row (asked -> reversed | failed) pointing at the transfer it reverses; the columns
go. Transfers, dispute shares' give-back transfers and voids count their attempts, so a retry
after a refusal asks Stripe with a key of its own.

Revision ID: 0018_reversal_intents
Revises: 0017_saga2_capture_reversal
Create Date: 2026-12-02 20:00:00

"""

from contextlib import contextmanager

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0018_reversal_intents"
down_revision = "0017_saga2_capture_reversal"
branch_labels = None
depends_on = None


@contextmanager
def _foreign_keys_off():
    """A batch copy drops and recreates the table; on SQLite, with foreign keys on, dropping a
    table other rows point at fails (SQLite does not see the copy, same name and ids, as the
    same parent). Foreign keys can only be switched off between transactions: the migration's
    transaction is committed, the copy runs with them off, is checked, and a new transaction
    is begun for the rest of the run."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    bind.exec_driver_sql("COMMIT")
    bind.exec_driver_sql("PRAGMA foreign_keys = OFF")
    try:
        yield
        broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken by the table copies: {broken[:5]}")
    finally:
        bind.exec_driver_sql("PRAGMA foreign_keys = ON")
        bind.exec_driver_sql("BEGIN")


def upgrade():
    op.create_table(
        "reversals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=False),
        sa.Column("refund_id", sa.Integer(), nullable=True),
        sa.Column("dispute_recovery_id", sa.Integer(), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "asked", "reversed", "failed", name="reversalstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("stripe_reversal_id", sa.String(length=64), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_reversals_amount_positive")),
        sa.CheckConstraint(
            "(refund_id IS NULL) <> (dispute_recovery_id IS NULL)",
            name=op.f("ck_reversals_one_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["dispute_recovery_id"],
            ["dispute_recoveries.id"],
            name=op.f("fk_reversals_dispute_recovery_id_dispute_recoveries"),
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_reversals_refund_id_refunds")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_reversals_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reversals")),
        sa.UniqueConstraint("dispute_recovery_id", name=op.f("uq_reversals_dispute_recovery_id")),
        sa.UniqueConstraint("refund_id", name=op.f("uq_reversals_refund_id")),
        sa.UniqueConstraint("stripe_reversal_id", name=op.f("uq_reversals_stripe_reversal_id")),
    )
    op.create_index(op.f("ix_reversals_transfer_id"), "reversals", ["transfer_id"], unique=False)
    # a refund's reversal: made, or refused (its share became a receivable)
    op.execute(
        "INSERT INTO reversals (transfer_id, refund_id, amount_cents, currency, status,"
        " stripe_reversal_id, failure_reason, attempt, created_at, answered_at)"
        " SELECT transfers.id, refunds.id, refunds.transfer_reversal_cents, transfers.currency,"
        " CASE WHEN refunds.stripe_reversal_id IS NOT NULL THEN 'reversed' ELSE 'failed' END,"
        " refunds.stripe_reversal_id,"
        " CASE WHEN refunds.stripe_reversal_id IS NULL THEN refunds.reversal_failure_reason END,"
        " 1, refunds.created_at, refunds.created_at"
        " FROM refunds JOIN transfers ON transfers.vendor_order_id = refunds.vendor_order_id"
        " WHERE refunds.transfer_reversal_cents > 0"
        " AND (refunds.stripe_reversal_id IS NOT NULL OR refunds.reversal_failure_reason IS NOT NULL)"
    )
    # a dispute share reversed from its transfer
    op.execute(
        "INSERT INTO reversals (transfer_id, dispute_recovery_id, amount_cents, currency, status,"
        " stripe_reversal_id, attempt, created_at, answered_at)"
        " SELECT transfer_id, id, amount_cents, currency, 'reversed', stripe_reversal_id, 1,"
        " created_at, created_at"
        " FROM dispute_recoveries"
        " WHERE stripe_reversal_id IS NOT NULL AND transfer_id IS NOT NULL"
    )
    with _foreign_keys_off():
        with op.batch_alter_table("payments") as batch_op:
            batch_op.add_column(
                sa.Column("void_attempt", sa.Integer(), nullable=False, server_default="1")
            )
        with op.batch_alter_table("transfers") as batch_op:
            batch_op.add_column(
                sa.Column("attempt", sa.Integer(), nullable=False, server_default="1")
            )
        with op.batch_alter_table("refunds") as batch_op:
            batch_op.drop_constraint(op.f("uq_refunds_stripe_reversal_id"), type_="unique")
            batch_op.drop_column("stripe_reversal_id")
            batch_op.drop_column("reversal_failure_reason")
        with op.batch_alter_table("dispute_recoveries") as batch_op:
            batch_op.drop_constraint(
                op.f("uq_dispute_recoveries_stripe_reversal_id"), type_="unique"
            )
            batch_op.drop_column("stripe_reversal_id")
            batch_op.add_column(
                sa.Column("return_attempt", sa.Integer(), nullable=False, server_default="1")
            )


def downgrade():
    with _foreign_keys_off():
        with op.batch_alter_table("dispute_recoveries") as batch_op:
            batch_op.drop_column("return_attempt")
            batch_op.add_column(
                sa.Column("stripe_reversal_id", sa.String(length=64), nullable=True)
            )
            batch_op.create_unique_constraint(
                op.f("uq_dispute_recoveries_stripe_reversal_id"), ["stripe_reversal_id"]
            )
        with op.batch_alter_table("refunds") as batch_op:
            batch_op.add_column(
                sa.Column("stripe_reversal_id", sa.String(length=64), nullable=True)
            )
            batch_op.add_column(sa.Column("reversal_failure_reason", sa.Text(), nullable=True))
            batch_op.create_unique_constraint(
                op.f("uq_refunds_stripe_reversal_id"), ["stripe_reversal_id"]
            )
        with op.batch_alter_table("transfers") as batch_op:
            batch_op.drop_column("attempt")
        with op.batch_alter_table("payments") as batch_op:
            batch_op.drop_column("void_attempt")
    op.execute(
        "UPDATE refunds SET stripe_reversal_id = (SELECT reversals.stripe_reversal_id"
        " FROM reversals WHERE reversals.refund_id = refunds.id AND reversals.status = 'reversed'),"
        " reversal_failure_reason = (SELECT COALESCE(reversals.failure_reason, '')"
        " FROM reversals WHERE reversals.refund_id = refunds.id AND reversals.status = 'failed')"
    )
    op.execute(
        "UPDATE dispute_recoveries SET stripe_reversal_id = (SELECT reversals.stripe_reversal_id"
        " FROM reversals WHERE reversals.dispute_recovery_id = dispute_recoveries.id"
        " AND reversals.status = 'reversed')"
    )
    op.drop_index(op.f("ix_reversals_transfer_id"), table_name="reversals")
    op.drop_table("reversals")
