"""The browser side of onair: static pages and the client library (plain ES modules, no build).

`STATIC_DIR` is served at `/static`; `TEMPLATES_DIR` holds the three page shells that
`onair.api.pages` fills with the client configuration.
"""

from __future__ import annotations

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"
