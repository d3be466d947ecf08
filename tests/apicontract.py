"""Check API answers against the OpenAPI document the application serves (JSON Schema 2020-12, as OpenAPI 3.1)."""
from __future__ import annotations

from jsonschema import Draft202012Validator


def served_document(browser) -> dict:
    """Return the OpenAPI document as the application serves it."""
    response = browser.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def assert_conforms(document: dict, method: str, path: str, response) -> None:
    """Fail unless the document lists response's status for the operation and its body fits that schema."""
    operation = document["paths"][path][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: {response.status_code} is not in the document"
    content = documented.get("content", {})
    assert response.mimetype in content, f"{method} {path} {response.status_code}: {response.mimetype} not documented"
    # The components travel inside the schema, so that its "#/components/schemas/…" references resolve.
    schema = {**content[response.mimetype]["schema"], "components": document["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(response.get_json()), key=str)
    assert not errors, f"{method} {path} {response.status_code}: " + "; ".join(error.message for error in errors)
