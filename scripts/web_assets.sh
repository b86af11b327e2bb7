#!/usr/bin/env bash
# The web page's third-party assets: NiiVue from the npm registry, pinned by
# web/package-lock.json (npm ci), copied into the package so the server sends them from
# its own origin (no CDN). Idempotent: skips npm when the copy matches the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=shared/rollerblade/web/static/vendor
# dist/index.js is the self-contained ES module (dist/index.min.js is not one)
# with the patches of scripts/patch_niivue.py, named in the marker so a copy without them is redone
want="$(python3 -c "import json; print(json.load(open('web/package-lock.json'))['packages']['node_modules/@niivue/niivue']['version'])") dist/index.js +$(python3 -c "import sys; sys.path.insert(0, 'scripts'); import patch_niivue; print('+'.join(patch_niivue.PATCHES))")"
if [ -f "$vendor/niivue.js" ] && [ "$(cat "$vendor/niivue.version" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup: web assets (npm ci: @niivue/niivue $want)" >&2
(cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
mkdir -p "$vendor"
cp web/node_modules/@niivue/niivue/dist/index.js "$vendor/niivue.js.new"
python3 scripts/patch_niivue.py "$vendor/niivue.js.new"
mv "$vendor/niivue.js.new" "$vendor/niivue.js"
echo "$want" > "$vendor/niivue.version"
