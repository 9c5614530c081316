"""``crm_module`` for ``create_app`` while ``renkei.crm.service`` has not landed."""

from .fake_crm import FakeCrmService as CrmService
from .fake_crm import to_api

__all__ = ["CrmService", "to_api"]
