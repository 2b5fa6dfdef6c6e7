"""The OpenAPI links schemathesis' stateful phase follows point at real operations."""

from __future__ import annotations

import pytest

from flwd.http._openapi import openapi_document

pytestmark = pytest.mark.fuzz


def resolve(document: dict, pointer: str) -> dict:
    node = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_link_resolves_to_an_operation_with_its_parameters() -> None:
    document = openapi_document()
    links = [(path, status, name, link)
             for path, operations in document["paths"].items()
             for operation in operations.values()
             for status, response in operation["responses"].items()
             for name, link in response.get("links", {}).items()]
    assert {name for _, _, name, _ in links} >= {"GetRun", "CancelRun", "RunEventsNdjson"}
    assert ("/runs", "201", "GetRun") in {(path, status, name) for path, status, name, _ in links}
    for _, _, _, link in links:
        target = resolve(document, link["operationRef"])
        names = {parameter["name"] for parameter in target.get("parameters", [])}
        assert set(link["parameters"]) <= names
        assert all(value.startswith("$response.body#/") for value in link["parameters"].values())

