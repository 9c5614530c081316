"""The built-in CRM's recycle bin index: which records went in together, and when."""

from __future__ import annotations

import sqlalchemy as sa

from renkei.store.db import UTCDateTime
from renkei.store.tables import metadata

crm_recycle_bin = sa.Table(
    "crm_recycle_bin",
    metadata,
    sa.Column("record_id", sa.String(18), primary_key=True),
    sa.Column("object_name", sa.String(80), nullable=False),
    #: The record whose deletion sent this one to the bin (itself, or a parent it cascaded from).
    sa.Column("root_id", sa.String(18), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_by", sa.String(18)),
    sa.Index("ix_crm_recycle_bin_root", "root_id"),
)
