"""The web page: static files (HTML, ES modules, CSS) that call only the HTTP API.

``static/vendor/`` holds third-party browser code installed from the npm registry by
``scripts/web_assets.sh`` (pinned by ``web/package-lock.json``), never fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path

#: The folder the server sends ``/`` (index.html) and ``/ui/*`` from.
STATIC = Path(__file__).parent / "static"

#: Only the page's own origin: no CDN, no inline script or style, no framing. Images and
#: workers may come from ``blob:`` URLs the page makes itself (QC images fetched with the
#: token, NiiVue's workers).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
