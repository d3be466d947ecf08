"""The published OpenAPI 3.1 document and its readable page, whose Swagger UI files kjdms serves itself."""
from __future__ import annotations

from pathlib import Path

import swagger_ui
from flask import abort, jsonify, render_template, send_from_directory, url_for

from . import bp, spec

SWAGGER_UI_DIR = Path(swagger_ui.__file__).resolve().parent / "static"
SWAGGER_UI_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})
# Swagger UI sets style attributes from its script: the page alone allows inline styles, never inline scripts.
DOCS_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@bp.get("/openapi.json")
def openapi_document():
    """Serve the OpenAPI 3.1 document generated from the views' own schemas."""
    return jsonify(spec.spec)


@bp.get("/docs/")
def docs_page():
    """Show the API's documentation (Swagger UI), readable without internet."""
    response = render_template("api/docs.html", spec_url=url_for("api.openapi_document"))
    return response, 200, {"Content-Security-Policy": DOCS_POLICY}


@bp.get("/docs/assets/<name>")
def docs_asset(name: str):
    """Serve one of Swagger UI's files from the installed swagger-ui-py wheel."""
    if name not in SWAGGER_UI_FILES:
        abort(404)
    response = send_from_directory(SWAGGER_UI_DIR, name, max_age=86400)
    response.headers["Cache-Control"] = "public, max-age=86400"  # not personal: the no-store default is not needed
    return response
