#!/usr/bin/env bash
# checkov over the Terraform of the GCP deployment, offline.
#
# checkov pins old `packaging`/`networkx`, so it lives in its own venv, never in the
# project's environment: ${ROLLERBLADE_CACHE:-~/.cache/rollerblade}/checkov-venv, made once
# (idempotent: an existing venv with the pinned checkov is reused as is).
# --skip-download: no policy or guideline download from the Bridgecrew/Prisma platform.
# terraform/tests (terraform test files, which checkov cannot parse) and terraform/offline
# (the stand-in provider) are not scanned.
# Skipped checks are skipped inline, next to their resource, each with its reason
# (`# checkov:skip=CKV_...: why`), so a reviewer sees them where they apply.
#
# Usage: terraform/offline/checkov.sh [extra checkov flags, e.g. -o json]
#        (CHECKOV_TERRAFORM_DIR=DIR scans another copy, as the tests do)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TERRAFORM=${CHECKOV_TERRAFORM_DIR:-$(dirname "$HERE")}
VERSION=3.3.30
VENV=${ROLLERBLADE_CACHE:-$HOME/.cache/rollerblade}/checkov-venv
if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))' 2>/dev/null)" != "$VERSION" ]; then
  echo "checkov: installing checkov==$VERSION into $VENV (once, a few minutes)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "checkov==$VERSION" >&2
fi
# Nothing leaves this machine: no platform mapping download, no PyPI update check.
export BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE LOG_LEVEL=${LOG_LEVEL:-WARNING}
exec "$VENV/bin/checkov" --framework terraform --skip-download --download-external-modules false \
  -d "$TERRAFORM" --skip-path offline --skip-path tests --compact --quiet "$@"
