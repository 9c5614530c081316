"""Checking queries against the CRM's metadata: Salesforce's error codes and messages, with positions."""

from __future__ import annotations

import pytest

from renkei.core.soql import SoqlError, check_query, parse_query
from renkei.crm.schema import LEAD, STANDARD_OBJECTS

from .helpers import NOW, TAGS

OBJECTS = STANDARD_OBJECTS | {"Lead": LEAD.with_fields([TAGS])}


@pytest.mark.parametrize(
    ("soql", "code", "message"),
    [
        (
            "SELECT Id, Foo FROM Lead",
            "INVALID_FIELD",
            "line 1:12: No such column 'Foo' on entity 'Lead'. If you are attempting to use a custom "
            "field, be sure to append the '__c' after the custom field name.",
        ),
        (
            "SELECT Id FROM Lead WHERE Owner.Nme = 'x'",
            "INVALID_FIELD",
            "line 1:27: No such column 'Nme' on entity 'User'. If you are attempting to use a custom "
            "field, be sure to append the '__c' after the custom field name.",
        ),
        (
            "SELECT Id FROM Lead ORDER BY Ownr.Name",
            "INVALID_FIELD",
            "line 1:30: Didn't understand relationship 'Ownr' in field path. If you are attempting to use "
            "a custom relationship, be sure to append the '__r' after the custom relationship name.",
        ),
        ("SELECT Id FROM Leads", "INVALID_TYPE", "line 1:16: sObject type 'Leads' is not supported."),
        (
            "SELECT Id FROM Lead WHERE ConvertedDate = 2024-05-01T00:00:00Z",
            "INVALID_FIELD",
            "line 1:41: value of filter criterion for field 'ConvertedDate' must be of type date "
            "and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Lead WHERE CreatedDate > 2024-05-01",
            "INVALID_FIELD",
            "line 1:39: value of filter criterion for field 'CreatedDate' must be of type dateTime "
            "and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Lead WHERE Company = 5",
            "INVALID_FIELD",
            "line 1:35: value of filter criterion for field 'Company' must be of type string "
            "and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Lead WHERE NumberOfEmployees = '5'",
            "INVALID_FIELD",
            "line 1:45: value of filter criterion for field 'NumberOfEmployees' must be of type integer "
            "and should not be enclosed in quotes",
        ),
        ("SELECT Id FROM Lead OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"),
        ("SELECT Id, Company FROM Lead WHERE", "MALFORMED_QUERY", "line 1:35: unexpected end of query"),
        ("SELECT Id, COUNT() FROM Lead", "MALFORMED_QUERY", "line 1:12: COUNT() must be the only element in the SELECT list"),
        ("SELECT Name, COUNT(Id) FROM Lead", "MALFORMED_QUERY", "line 1:8: Field must be grouped or aggregated: Name"),
        ("SELECT Id, id FROM Lead", "MALFORMED_QUERY", "line 1:12: duplicate field selected: id"),
        ("SELECT Id FROM Lead WHERE Company LIKE 'x' AND Tags__c LIKE 'a'", "INVALID_FIELD",
         "line 1:48: invalid operator on field 'Tags__c': LIKE applies to string fields only"),
        ("SELECT Id FROM Lead WHERE Company INCLUDES ('a')", "INVALID_FIELD",
         "line 1:27: INCLUDES/EXCLUDES operator only valid on multipicklist field: 'Company'"),
        ("SELECT Id FROM Lead WHERE Who.Name = 'x'", "INVALID_FIELD",
         "line 1:27: Didn't understand relationship 'Who' in field path. If you are attempting to use "
         "a custom relationship, be sure to append the '__r' after the custom relationship name."),
    ],
)  # fmt: skip
def test_errors(soql: str, code: str, message: str) -> None:
    with pytest.raises(SoqlError) as info:
        check_query(parse_query(soql), OBJECTS, now=NOW)
    assert (info.value.code, info.value.message) == (code, message)
