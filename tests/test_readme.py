"""The README is part of the product: its configuration table and API table must not drift."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from handoff.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [f"HANDOFF_{name.upper()}" for name in Settings.model_fields
               if f"HANDOFF_{name.upper()}" not in README]
    assert not missing, f"document these in README's Configuration table: {missing}"


async def test_every_route_of_the_service_is_in_the_readme(client: TestClient[Any, Any]
                                                           ) -> None:
    document = await (await client.get("/openapi.json")).json()
    # The README writes paths as in the API, with `{name}` placeholders.
    documented = set(re.findall(r"(/v1/[^\s`?,]+|/healthz|/readyz|/metrics|/openapi\.json|/docs)",
                                README))
    missing = sorted(p for p in document["paths"] if p not in documented)
    assert not missing, f"add these routes to the README's API table: {missing}"
