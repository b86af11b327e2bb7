"""The HTTP API: an ASGI app (FastAPI) over the same use cases as the CLI.

``app.create_app`` builds it; ``rollerblade serve --http`` and the Cloud Run service run
it; ``docs/openapi.json`` is generated from it (``scripts/openapi.py``).
"""
