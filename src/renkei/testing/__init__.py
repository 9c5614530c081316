"""Test doubles and contract suites shipped with renkei (like httpx's ``MockTransport``).

faults         ``FaultInjectingTransport``: an httpx transport that fails on schedule
               (5xx, 429, timeouts, lock errors, request limits, partial collection failures)
crm_contract   the contract every CRM adapter passes (built-in in-process, Salesforce over HTTP,
               Salesforce under injected faults)
"""
