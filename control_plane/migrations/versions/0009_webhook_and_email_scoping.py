"""webhook_and_email_scoping: a user's email is unique within its tenant (platform
admins: among themselves), no longer across the platform

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_PLATFORM_ONLY = sa.text("tenant_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_email", type_="unique")
        batch_op.create_unique_constraint("uq_users_tenant_id", ["tenant_id", "email"])
        batch_op.create_index("ix_users_email", ["email"], unique=False)
    # unique constraints let NULLs repeat: platform admins need a partial index of their own
    op.create_index(
        "uq_users_platform_email",
        "users",
        ["email"],
        unique=True,
        sqlite_where=_PLATFORM_ONLY,
        postgresql_where=_PLATFORM_ONLY,
    )


def downgrade() -> None:
    op.drop_index("uq_users_platform_email", table_name="users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_email")
        batch_op.drop_constraint("uq_users_tenant_id", type_="unique")
        batch_op.create_unique_constraint("uq_users_email", ["email"])
