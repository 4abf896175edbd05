"""`python -m handoff.programs.configdoc > docs/configuration.md`: every setting, from Settings."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from handoff.kernel.settings import Settings

HEADER = """# Configuration

Generated from `handoff/kernel/settings.py` by
`python -m handoff.programs.configdoc > docs/configuration.md`;
a test fails when the two differ. Every setting is an environment variable with the prefix
`HANDOFF_`; lists and maps are JSON (`HANDOFF_TENANT_RETENTION_DAYS='{"acme": 7}'`).
`handoff serve --host/--port/--data-dir` override their variables.

| variable | type | default | meaning |
| --- | --- | --- | --- |
"""


def _type(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return re.sub(r"\b(typing|pathlib)\.", "", text).replace("NoneType", "None")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined or field.default is None:
        return "unset"
    else:
        value = field.default
    text = json.dumps(to_jsonable_python(value))
    return _cell(f"`{text}`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    rows = [f"| `HANDOFF_{name.upper()}` | {_cell(f'`{_type(field.annotation)}`')} | "
            f"{_default(field)} | "
            f"{_cell(field.description or '')} |"
            for name, field in Settings.model_fields.items()]
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
