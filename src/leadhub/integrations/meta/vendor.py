"""Every Meta field name, error code and header leadhub relies on, with where each fact comes from.

Source: ../shared/providers/meta.md (section numbers below). Nothing outside this module spells a
Meta field name.
"""

from __future__ import annotations

# §2.2 subscription handshake query parameters.
HUB_MODE = "hub.mode"
HUB_VERIFY_TOKEN = "hub.verify_token"  # noqa: S105 (a parameter name, not a secret)
HUB_CHALLENGE = "hub.challenge"
HUB_MODE_SUBSCRIBE = "subscribe"

# §2.3 signature header: "sha256=" + hex HMAC-SHA256(raw body, app secret).
SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="

# §2.3 webhook payload: object, entry[].id/time, entry[].changes[].field/value.
OBJECT_PAGE = "page"
FIELD_LEADGEN = "leadgen"
LEADGEN_ID = "leadgen_id"  # the dedupe key
PAGE_ID = "page_id"
FORM_ID = "form_id"
AD_ID = "ad_id"
ADGROUP_ID = "adgroup_id"
CREATED_TIME = "created_time"  # Unix seconds in webhooks; "2015-11-12T15:27:06+0000" from Graph

# §2.4 lead fields; sparse fieldsets are mandatory in practice. `platform` is fb | ig.
LEAD_FIELDS = (
    "id,created_time,field_data,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,"
    "form_id,is_organic,platform"
)
LEAD_META_KEYS = (
    "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name", "form_id",
    "is_organic", "platform",
)  # fmt: skip
FIELD_DATA = "field_data"  # [{"name": <question key>, "values": [...]}]; `values` may be absent (§2.7)
GRAPH_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # "2025-12-06T05:48:00+0000" (§2.4)

# §2.4 form listing and leads paging.
FORM_FIELDS = "id,name,status,questions"
PAGE_LIMIT_MAX = 100  # larger limits produced repeated 500s (frappe/crm#2870)
FILTER_TIME_CREATED = "time_created"
FILTER_GREATER_THAN = "GREATER_THAN"
FILTER_LESS_THAN = "LESS_THAN"

# §2.7 standard question keys (map on the question `key`, which is field_data[].name).
NAME_KEYS = ("full_name", "FULL_NAME")
FIRST_NAME_KEYS = ("first_name",)
LAST_NAME_KEYS = ("last_name",)
PHONE_KEYS = ("phone_number", "phone", "mobile_phone", "mobile", "phone_number_with_country_code")
EMAIL_KEYS = ("email", "work_email_address")
CITY_KEYS = ("city",)
PHONE_VALUE_PREFIX = "p:"  # CSV export / Sheets prefix; stripped defensively (§2.7)

# §2.6 Graph error envelope and codes. Most arrive as HTTP 400; throttling is not 429.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001, 80004, 80005})
TOKEN_CODES = frozenset({190, 102})
TRANSIENT_CODES = frozenset({1, 2})
# §2.6 usage headers: JSON inside a header; no Retry-After.
APP_USAGE_HEADER = "X-App-Usage"
BUC_USAGE_HEADER = "X-Business-Use-Case-Usage"
USAGE_HIGH_PERCENT = 95  # back off before Meta throttles us
REGAIN_ACCESS_KEY = "estimated_time_to_regain_access"  # minutes
