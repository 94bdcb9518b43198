"""The OpenAPI schema at /openapi.json (what /docs shows) against the routes and what they send:
every route has a 200 model and declares its errors with the error body, and real answers,
successes and errors, validate against the schema of their status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from jsonschema import Draft202012Validator

from doclane import api as rest
from doclane import page, probes, websocket
from doclane.app import create_app
from doclane.settings import Settings
from tests.documents import png_bytes
from tests.test_auth import ALICE, KEYS, as_user

pytestmark = pytest.mark.anyio

JSON = "application/json"
# The errors each route declares (besides `default`, any other error): what it can answer.
DECLARED = {
    ("post", "/api/upload"): {400, 401, 403, 408, 413, 415, 422, 429, 503, 507},
    ("get", "/api/jobs"): {400, 401, 422, 503},
    ("get", "/api/jobs/{job_id}"): {400, 401, 404, 503},
    ("delete", "/api/jobs/{job_id}"): {400, 401, 403, 404, 503},
    ("post", "/api/jobs/{job_id}/cancel"): {400, 401, 403, 404, 409, 503},
    ("get", "/api/health"): {400},
    ("get", "/api/ready"): {400, 503},
    ("get", "/metrics"): {400, 401, 503},
}


@pytest.fixture
async def schema(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, methods in doc["paths"].items()
        for method, operation in methods.items()
    }


def ref_of(response: dict[str, Any], media: str = JSON) -> str:
    ref: str = response["content"][media]["schema"]["$ref"]
    assert ref.startswith("#/components/schemas/"), response
    return ref


def check(doc: dict[str, Any], method: str, path: str, answer: httpx.Response) -> None:
    """The answer validates against the schema its route declares for its status."""
    responses = doc["paths"][path][method]["responses"]
    declared = responses.get(str(answer.status_code), responses["default"])
    validator = Draft202012Validator(
        {"$ref": ref_of(declared), "components": doc["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = [e.message for e in validator.iter_errors(answer.json())]
    assert errors == [], (method, path, answer.status_code, answer.text)


async def test_every_route_declares_its_answer_and_its_errors(schema: dict[str, Any]) -> None:
    served = {
        (method.lower(), route.path)
        for router in (rest.router, probes.router, page.router, websocket.router)
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    found = operations(schema)
    assert set(found) == served == set(DECLARED)  # a new route must be added here
    error_models = {"#/components/schemas/ErrorBody"}
    for (method, path), operation in found.items():
        assert operation.get("description"), (method, path)  # its docstring
        responses = operation["responses"]
        if path == "/metrics":
            assert "text/plain" in next(iter(responses["200"]["content"]))
        else:
            assert ref_of(responses["200"]).endswith("Response"), (method, path)
        codes = {int(code) for code in responses if code not in ("200", "default")}
        assert codes == DECLARED[(method, path)], (method, path)
        for code, response in responses.items():
            if code == "200":
                continue
            assert response["description"], (method, path, code)
            expected = "NotReady" if (path, code) == ("/api/ready", "503") else "ErrorBody"
            assert ref_of(response) == f"#/components/schemas/{expected}", (method, path, code)
            error_models.add(ref_of(response))
    assert "HTTPValidationError" not in str(schema)  # FastAPI's 422 body is never sent
    job = schema["components"]["schemas"]["JobView"]
    assert job["required"] == [
        "job_id",
        "status",
        "progress",
        "file_name",
        "created_at",
        "completed_at",
        "ai_response",
    ]  # the seed's fields, in its order
    for name, field in job["properties"].items():
        assert field.get("examples") or field.get("description"), name
    assert job["properties"]["created_at"]["format"] == "date-time"
    params = {p["name"]: p for p in schema["paths"]["/api/jobs"]["get"]["parameters"]}
    assert set(params) == {"status", "limit", "cursor"}
    limit = params["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 20)


async def test_real_answers_validate_against_the_schema(
    schema: dict[str, Any], api: httpx.AsyncClient
) -> None:
    upload = await api.post(
        "/api/upload", files={"file": ("a.png", png_bytes())}, data={"prompt": "Q"}
    )
    check(schema, "post", "/api/upload", upload)
    job_id = upload.json()["data"]["job_id"]
    second = await api.post("/api/upload", files={"file": ("b.png", png_bytes())})
    check(schema, "get", "/api/jobs/{job_id}", await api.get(f"/api/jobs/{job_id}"))
    listed = await api.get("/api/jobs", params={"limit": 1})
    assert listed.json()["data"]["next"] is not None
    check(schema, "get", "/api/jobs", listed)
    cancelled = await api.post(f"/api/jobs/{job_id}/cancel")
    check(schema, "post", "/api/jobs/{job_id}/cancel", cancelled)
    deleted = await api.delete(f"/api/jobs/{job_id}")  # a finished job: deleted
    check(schema, "delete", "/api/jobs/{job_id}", deleted)
    check(schema, "get", "/api/jobs", await api.get("/api/jobs", params={"status": "cancelled"}))
    check(schema, "get", "/api/health", await api.get("/api/health"))
    check(schema, "get", "/api/ready", await api.get("/api/ready"))
    errors = [
        ("get", "/api/jobs/{job_id}", await api.get(f"/api/jobs/{job_id}"), 404),
        ("post", "/api/upload", await api.post("/api/upload", data={"prompt": "Q"}), 400),
        ("get", "/api/jobs", await api.get("/api/jobs", params={"limit": 0}), 422),
        ("get", "/api/jobs", await api.get("/api/jobs", params={"cursor": "?"}), 400),
        (
            "post",
            "/api/upload",
            await api.post("/api/upload", files={"file": b"\x00\x01 binary"}),
            415,
        ),
        ("get", "/api/health", await api.get("/api/health", headers={"host": "evil.test"}), 400),
    ]
    for method, path, response, status in errors:
        assert response.status_code == status, response.text
        check(schema, method, path, response)
    assert second.status_code == 200


async def test_an_unready_answer_and_a_401_validate(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path / "data", run_worker=False, api_keys=KEYS)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://doclane") as api:
            doc = (await api.get("/openapi.json")).json()
            check(doc, "get", "/api/jobs", await api.get("/api/jobs"))  # 401
            mine = await api.get("/api/jobs", headers=as_user(ALICE))
            check(doc, "get", "/api/jobs", mine)
            await app.state.services.store.close()  # the database is gone
            unready = await api.get("/api/ready")
            assert unready.status_code == 503, unready.text
            check(doc, "get", "/api/ready", unready)
            assert unready.json()["error"].startswith("Not ready: database")
