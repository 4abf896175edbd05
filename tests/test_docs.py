"""`/docs`: the API reference renders from files served here, and shows the API's example bodies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from schemas.brief import AcceptResult, Brief
from schemas.common import Problem
from schemas.conversations import AppendResult, AppendTurns
from schemas.handoffs import AcceptIn, Handoff, HandoffIn, RedeemIn, RedeemResult
from schemas.verification import VerifyIn, VerifyResult
from tests.browser import browser

__all__ = ["browser"]  # the fixture, used by name below

# The API's main bodies, by example, request and answer of each.
EXAMPLE_BODIES: tuple[type[BaseModel], ...] = (
    AppendTurns, AppendResult, HandoffIn, Handoff, RedeemIn, RedeemResult, VerifyIn,
    VerifyResult, AcceptIn, AcceptResult, Brief)


def test_each_example_body_validates_against_its_model() -> None:
    for model in (*EXAMPLE_BODIES, Problem):
        extra = model.model_config.get("json_schema_extra")
        assert isinstance(extra, dict), model.__name__
        (example,) = extra["examples"]
        # Through JSON, as a client would send it (timestamps as strings, no Python objects).
        model.model_validate_json(json.dumps(example))


async def test_the_examples_are_in_the_published_description(client: TestClient[Any, Any]
                                                             ) -> None:
    document = await (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for model in EXAMPLE_BODIES:
        assert schemas[model.__name__]["examples"], model.__name__
    body = document["paths"]["/v1/handoffs"]["post"]["requestBody"]["content"]
    ref = body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schemas[ref]["examples"][0]["queue"] == "billing"


async def test_the_docs_page_uses_only_files_served_here(client: TestClient[Any, Any]) -> None:
    page = await client.get("/docs")
    assert page.status == 200 and page.content_type == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    assert "http" not in html  # no absolute URL: nothing from another origin
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "init.js"):
        asset = await client.get(f"/docs/assets/{name}")
        assert asset.status == 200, name
        assert len(await asset.read()) > 100
    for bad in ("LICENSE", "..%2F..%2Fpyproject.toml", "swagger-editor.js", "index.j2"):
        missing = await client.get(f"/docs/assets/{bad}")
        assert missing.status == 404 and missing.content_type == "application/problem+json"
    assert "/docs/assets/{name}" not in (await (await client.get("/openapi.json")).json())[
        "paths"]


async def test_the_docs_render_in_a_browser_without_leaving_the_machine(
        client: TestClient[Any, Any], browser: Any) -> None:
    origin = str(client.make_url("")).rstrip("/")
    page = await browser.new_page()
    requested: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    await page.goto(f"{origin}/docs", wait_until="networkidle")
    await page.wait_for_selector(".opblock-summary-path", timeout=15_000)

    assert await page.title() == "handoff API"
    paths = await page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/handoffs/{id}/accept" in p.replace("\u200b", "") for p in paths), paths
    # Open one operation: the API's example body is what the reader sees.
    create = page.locator(".opblock-post", has_text="Request a hand-off to a human").first
    await create.locator(".opblock-summary").click()
    await page.wait_for_selector(".opblock-body .body-param__example, .opblock-body pre")
    assert "billing.double_charge" in await create.inner_text()

    elsewhere = [u for u in requested if urlsplit(u).scheme not in ("data", "blob")
                 and not u.startswith(origin + "/")]
    assert not elsewhere, f"the page asked another origin for: {elsewhere}"
    assert f"{origin}/openapi.json" in requested
    assert not failed and not errors, (failed, errors)
    await page.close()
