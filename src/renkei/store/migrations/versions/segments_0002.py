"""segments: the activity connector views (VisitorActivity, VisitorPageView on the CRM side)

Revision ID: segments_0002
Revises: segments_0001

Read-only views over ``visitor_activity`` / ``visitor_page_view`` joined to ``prospect`` (for the
Lead / Contact / Account ids) and ``campaign``; see ``renkei.store.tables_segments``.
"""

from alembic import op

revision = "segments_0002"
down_revision = "segments_0001"
branch_labels = None
depends_on = None


def _id(prefix: str, column: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"'{prefix}' || lpad({column}::text, 15, '0')"
    return f"'{prefix}' || substr('000000000000000' || {column}, -15, 15)"


def upgrade() -> None:
    d = op.get_bind().dialect.name
    false = "false" if d == "postgresql" else "0"
    common = (
        f'{false} AS "IsDeleted", p."salesforceLeadId" AS "LeadId", p."salesforceContactId" AS "ContactId", '
        'p."salesforceAccountId" AS "AccountId", c.name AS "CampaignName", x."prospectId" AS "ProspectId", '
        'x."visitorId" AS "VisitorId", x."createdAt" AS "CreatedDate"'
    )
    joins = 'JOIN prospect p ON p.id = x."prospectId" LEFT JOIN campaign c ON c.id = x."campaignId"'
    op.execute(
        f'CREATE VIEW crm_visitoractivity AS SELECT {_id("a0V", "x.id", d)} AS "Id", {common}, '
        'x."updatedAt" AS "LastModifiedDate", x."updatedAt" AS "SystemModstamp", x.type AS "Type", '
        'x."typeName" AS "TypeName", x.details AS "Details", x."emailId" AS "EmailId", x."formId" AS "FormId", '
        f'x."landingPageId" AS "LandingPageId", x."fileId" AS "FileId" FROM visitor_activity x {joins}'
    )
    op.execute(
        f'CREATE VIEW crm_visitorpageview AS SELECT {_id("a0P", "x.id", d)} AS "Id", {common}, '
        'x."createdAt" AS "LastModifiedDate", x."createdAt" AS "SystemModstamp", x.url AS "Url", '
        'x.title AS "Title", x."durationInSeconds" AS "DurationInSeconds", x."visitId" AS "VisitId" '
        f"FROM visitor_page_view x {joins}"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS crm_visitorpageview")
    op.execute("DROP VIEW IF EXISTS crm_visitoractivity")
