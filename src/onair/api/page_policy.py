"""Security headers of the HTML pages: a Content-Security-Policy that allows exactly what the
pages load, and no framing (clickjacking of the studio's controls).

What the pages load (read from `web/templates` and `web/static`): ES modules and one stylesheet
from `/static`, a `data:` favicon, REST and the realtime WebSocket on the same origin (`'self'`
covers ws:/wss: to the page's own host and port in CSP Level 3 browsers), camera streams and
WebRTC (neither is governed by CSP). No inline script runs (the config block is
`type="application/json"`, which is data) and no inline style is used (only CSSOM `el.style`,
which CSP allows). In Agora mode the page also loads the Agora Web SDK from Agora's CDN and the
SDK talks to Agora's servers — the domains Agora documents for firewalls (docs.agora.io,
"Firewall requirements", Web SDK 4.x).

`X-Content-Type-Options: nosniff` is on every response (RequestContextMiddleware), not only here.
"""

from __future__ import annotations

from functools import lru_cache

# The origin of `AGORA_SDK_URL` in web/static/client/media/agora.js (a test keeps them equal).
AGORA_SDK_ORIGIN = "https://download.agora.io"
AGORA_DOMAINS = ("*.agora.io", "*.sd-rtn.com", "*.rtnsvc.com", "*.rtesvc.com")


@lru_cache(maxsize=4)
def content_security_policy(agora: bool, override: str | None = None, images: str = "") -> str:
    """``images``: extra img-src sources (the showcase's product images, setting
    ``web_image_sources``); images cannot run code, they can only be seen and counted."""
    if override:
        return override
    script = ["'self'"]
    connect = ["'self'"]
    if agora:
        script.append(AGORA_SDK_ORIGIN)
        connect += [f"{scheme}://{domain}" for domain in AGORA_DOMAINS for scheme in ("https", "wss")]
    directives = {
        "default-src": ["'self'"],
        "script-src": script,
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", *images.split()],
        "media-src": ["'self'", "blob:", "mediastream:"],
        "connect-src": connect,
        "worker-src": ["'self'", "blob:"] if agora else ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def page_headers(agora: bool, override: str | None = None, images: str = "") -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(agora, override, images),
        "X-Frame-Options": "DENY",  # for browsers without frame-ancestors
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }
