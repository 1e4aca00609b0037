"""The dashboard's pages as the browser gets them: the Jinja2 templates (in ``static/``, with
the filters that format each cell), and the static files they load — Plotly.js from the
``plotly`` package (no CDN: it works with no internet), huoke's own script and style — each
linked with its content's hash, so a browser caches it until huoke is upgraded."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, Template, select_autoescape

from engine.presentation.dashboard import compact, numeric_keys, shown

STATIC = Path(__file__).parent / "static"


@cache
def _templates() -> Environment:
    """The page templates, with the filters that format a cell and the versioned static links."""
    env = Environment(loader=FileSystemLoader(STATIC), autoescape=select_autoescape(["html", "j2"]))
    env.filters["shown"] = shown
    env.filters["compact"] = compact
    env.globals["static_url"] = static_url
    env.globals["numeric_keys"] = numeric_keys
    return env


def _plotly_js() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@cache
def static_files() -> dict[str, tuple[Path, str]]:
    """Each file the page loads, with a version (its content's hash) for the page's links, so a
    browser caches it until huoke is upgraded."""
    files = {"plotly.min.js": _plotly_js(), "dashboard.js": STATIC / "dashboard.js",
             "journey.js": STATIC / "journey.js", "dashboard.css": STATIC / "dashboard.css"}  # fmt: skip
    return {name: (path, hashlib.sha256(path.read_bytes()).hexdigest()[:12]) for name, path in files.items()}


def static_url(name: str) -> str:
    return f"/dashboard/static/{name}?v={static_files()[name][1]}"


def page_template(name: str) -> Template:
    return _templates().get_template(name)
