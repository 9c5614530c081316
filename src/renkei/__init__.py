"""renkei (連携): B2B marketing automation with a first-class CRM connector."""

__version__ = "0.1.0"
