"""Print the HTTP API's OpenAPI document (committed as docs/openapi.json; a test checks it
is current). Usage: python3 scripts/openapi.py > docs/openapi.json"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from rollerblade.api.app import create_app
from rollerblade.settings import Settings
from rollerblade.stack import open_stack


def document() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as home:
        stack = open_stack(Settings(home=Path(home)))
        try:
            return create_app(stack.services).openapi()
        finally:
            stack.close()


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, sort_keys=True))
