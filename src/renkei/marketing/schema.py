"""The marketing model's metadata: Account Engagement API v5 field names and types (pure data).

Prospect custom fields use the same types as CRM custom fields (``renkei.crm.schema.FieldType``);
their names end in ``__c`` as in API v5.
"""

from __future__ import annotations

from renkei.crm.schema import FieldDef, FieldType

_S = FieldType.STRING


_LENGTHY = (_S, FieldType.EMAIL, FieldType.PHONE, FieldType.URL, FieldType.TEXTAREA, FieldType.ID)


def _f(name: str, type_: FieldType = _S, length: int = 255) -> FieldDef:
    return FieldDef(name, type_, length=length if type_ in _LENGTHY else 0)


#: Prospect fields a user (CLI, API, import, form) may write.
PROSPECT_WRITABLE: tuple[FieldDef, ...] = (
    _f("email", FieldType.EMAIL, 255),
    _f("salutation", length=40),
    _f("firstName", length=40),
    _f("lastName", length=80),
    _f("jobTitle", length=128),
    _f("department", length=80),
    _f("company", length=255),
    _f("website", FieldType.URL, 255),
    _f("phone", FieldType.PHONE, 40),
    _f("fax", FieldType.PHONE, 40),
    _f("addressOne", length=255),
    _f("addressTwo", length=255),
    _f("city", length=40),
    _f("state", length=80),
    _f("zip", length=20),
    _f("territory", length=80),
    _f("country", length=80),
    _f("annualRevenue", length=255),
    _f("employees", length=255),
    _f("industry", length=255),
    _f("yearsInBusiness", length=255),
    _f("comments", FieldType.TEXTAREA, 65535),
    _f("notes", FieldType.TEXTAREA, 65535),
    _f("source", length=255),
    _f("score", FieldType.INT),
    _f("grade", length=2),
    _f("campaignId", FieldType.INT),
    _f("profileId", FieldType.INT),
    _f("assignedToId", FieldType.INT),
    _f("prospectAccountId", FieldType.INT),
    _f("optedOut", FieldType.BOOLEAN),
    _f("isDoNotEmail", FieldType.BOOLEAN),
    _f("isDoNotCall", FieldType.BOOLEAN),
    _f("doNotSell", FieldType.BOOLEAN),
    _f("isReviewed", FieldType.BOOLEAN),
    _f("isStarred", FieldType.BOOLEAN),
    _f("sourceParameter", length=255),
    _f("campaignParameter", length=255),
    _f("mediumParameter", length=255),
    _f("contentParameter", length=255),
    _f("termParameter", length=255),
)

#: Fields renkei maintains itself (read-only through the CLI/API, written by services and the connector).
PROSPECT_SYSTEM: tuple[FieldDef, ...] = (
    _f("id", FieldType.INT),
    _f("lastActivityAt", FieldType.DATETIME),
    _f("firstActivityAt", FieldType.DATETIME),
    _f("recentInteraction", length=255),
    _f("firstReferrerUrl", FieldType.URL, 2048),
    _f("firstReferrerType", length=255),
    _f("firstReferrerQuery", length=255),
    _f("convertedAt", FieldType.DATETIME),
    _f("convertedFromObjectName", length=255),
    _f("convertedFromObjectType", length=40),
    _f("isEmailHardBounced", FieldType.BOOLEAN),
    _f("emailBouncedAt", FieldType.DATETIME),
    _f("emailBouncedReason", length=255),
    _f("softBounceCount", FieldType.INT),
    _f("firstAssignedAt", FieldType.DATETIME),
    _f("salesforceId", FieldType.ID, 18),
    _f("salesforceLeadId", FieldType.ID, 18),
    _f("salesforceContactId", FieldType.ID, 18),
    _f("salesforceAccountId", FieldType.ID, 18),
    _f("salesforceOwnerId", FieldType.ID, 18),
    _f("salesforceCampaignId", FieldType.ID, 18),
    _f("salesforceUrl", FieldType.URL, 255),
    _f("salesforceLastSync", FieldType.DATETIME),
    _f("isDeleted", FieldType.BOOLEAN),
    _f("deletedAt", FieldType.DATETIME),
    _f("createdAt", FieldType.DATETIME),
    _f("updatedAt", FieldType.DATETIME),
    _f("createdById", FieldType.INT),
    _f("updatedById", FieldType.INT),
)

PROSPECT_FIELDS: dict[str, FieldDef] = {f.name: f for f in PROSPECT_WRITABLE + PROSPECT_SYSTEM}

#: AE grade letters from lowest to highest, in thirds (index 0 = F … 12 = A+). New prospects start at D.
GRADES: tuple[str, ...] = ("F", "D-", "D", "D+", "C-", "C", "C+", "B-", "B", "B+", "A-", "A", "A+")
