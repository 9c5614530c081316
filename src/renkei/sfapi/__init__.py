"""The built-in CRM's Salesforce-compatible REST API (``/services/data/v60.0/…``).

    auth       OAuth 2.0 clients, API passwords and bearer tokens (session ids) tied to CRM users
    usage      the request log and the org's rolling 24-hour API usage (``Sforce-Limit-Info``)
    cursors    server-side query locators (``nextRecordsUrl`` paging)
    resources  the REST operations over ``CrmService``, in Salesforce's shapes

The web layer (``renkei.web.routes.sfapi``) only parses requests and renders these results.
"""

from __future__ import annotations

API_VERSION = "60.0"
BASE_PATH = f"/services/data/v{API_VERSION}"
#: Versions the version list advertises; every one is served by the same handlers.
SUPPORTED_VERSIONS = ("58.0", "59.0", "60.0")
