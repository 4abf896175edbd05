"""The README and docs/ are part of the product: they must not drift from the service. Every
setting and every route is documented, every link leads somewhere, the README stays a first
hour's read, and docs/brief.md shows every field of a real brief."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args, get_origin

from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from handoff.kernel.settings import Settings
from schemas.brief import Brief

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
# The routes: docs/api.md, and the vendors' own in the adapters' guide.
API = (DOCS / "api.md").read_text() + (DOCS / "adapters" / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_a_first_hours_read() -> None:
    words = len(README.split())
    assert words < 2500, f"the README has {words} words: move detail to docs/"


def test_every_setting_is_documented() -> None:
    written = (DOCS / "configuration.md").read_text()
    missing = [f"HANDOFF_{name.upper()}" for name in Settings.model_fields
               if f"HANDOFF_{name.upper()}" not in written]
    assert not missing, f"regenerate docs/configuration.md (handoff.programs.configdoc): {missing}"


async def test_every_route_of_the_service_is_in_the_api_guide(client: TestClient[Any, Any]
                                                               ) -> None:
    document = await (await client.get("/openapi.json")).json()
    # The guide writes paths as in the API, with `{name}` placeholders.
    documented = set(re.findall(r"(/v1/[^\s`?,]+|/healthz|/readyz|/metrics|/openapi\.json|/docs)",
                                API))
    missing = sorted(p for p in document["paths"] if p not in documented)
    assert not missing, f"add these routes to the routes table of docs/api.md: {missing}"


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    found = set()
    for heading in re.findall(r"(?m)^#{1,6} (.+)$", page.read_text()):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_link_between_the_documents_leads_somewhere() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def fields(model: type[BaseModel]) -> set[str]:
    """Every field name of a model and of the models inside it."""
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        stack: list[Any] = [info.annotation]
        while stack:
            kind = stack.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= fields(kind)
            elif get_origin(kind) is not None or get_args(kind):
                stack += get_args(kind)
    return names


def keys(value: Any, *, values_are_named: bool = False) -> set[str]:
    """Every key of a JSON document (not those of `facts`, which are the data's own)."""
    if isinstance(value, list):
        return set().union(*(keys(v) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = set() if values_are_named else set(value)
    for name, inner in value.items():
        found |= keys(inner, values_are_named=name == "facts")
    return found


def test_the_brief_guide_shows_and_explains_every_field_of_a_real_brief() -> None:
    guide = (DOCS / "brief.md").read_text()
    (example,) = re.findall(r"```json\n(.*?)\n```", guide, re.DOTALL)
    brief = json.loads(example)
    Brief.model_validate(brief)
    shown = keys(brief)
    assert fields(Brief) <= shown, f"the example lacks {sorted(fields(Brief) - shown)}"
    explained = set(re.findall(r"`([a-z_]+)`", guide))
    assert fields(Brief) <= explained, f"explain {sorted(fields(Brief) - explained)}"
