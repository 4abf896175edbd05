"""The `/docs` page: Swagger UI from the pip-installed `swagger-ui-py` package, served by us.

Nothing is fetched from elsewhere: the scripts and styles come from the package's files, the
description from `/openapi.json`, and the page's Content-Security-Policy forbids any other origin
(so a future Swagger UI that phones home fails closed instead of leaking).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

INIT_NAME = "init.js"
# Only these files of the package are served; a name is looked up, never joined into a path.
FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>handoff API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head><body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body></html>
"""

# validatorUrl null: Swagger UI would otherwise send the description to an online validator.
INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""

POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
          "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
          "frame-ancestors 'none'")


def _static_dir() -> Path:
    """The package's static folder, found without importing it (it would pull in jinja2)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def asset(name: str) -> Path | None:
    """The file served as `/docs/assets/<name>`, or None."""
    return _static_dir() / name if name in FILES else None
