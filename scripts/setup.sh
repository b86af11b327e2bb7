#!/usr/bin/env bash
# Install everything Rollerblade and its tests need on a fresh Debian machine (idempotent).
#   system: mricron-data (the Colin27 T1 with skull used by the demo and tests),
#           docker.io + debootstrap (the engine Analyses run on; base image built offline)
#   python: this package with its demo and test extras (nilearn, dipy, bids-validator-deno, ...)
#           chromium (Debian's browser, driven by Playwright in the web page's tests)
#   web:    NiiVue from the npm registry, pinned by web/package-lock.json (scripts/web_assets.sh)
#   kube:   kube-apiserver, controller-manager, scheduler, kubelet for the gke executor's tests
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
for pkg in mricron-data docker.io debootstrap chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Always (re)install this checkout in editable mode: another checkout may be installed.
echo "setup: installing Python packages (pip install -e '.[demo,test]')" >&2
log=$(mktemp)
if ! python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[demo,test]" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
python3 -c "import rollerblade, sys; print('setup: rollerblade from', rollerblade.__file__, file=sys.stderr)"

scripts/web_assets.sh

# The Docker engine (started only if none answers) and the Analyses' base image (cached).
if [ "${ROLLERBLADE_SKIP_DOCKER:-0}" != 1 ]; then
  scripts/dockerd.sh >/dev/null
  docker/base/build.sh
fi

# The gke executor's tests run against a real Kubernetes API server, Job controller and
# kubelet, built offline from Debian's source package (the first time: 5-15 minutes; cached).
if [ "${ROLLERBLADE_SKIP_KUBE:-0}" != 1 ]; then
  echo "setup: Kubernetes binaries (scripts/kube/build.sh; cached after the first build)" >&2
  scripts/kube/build.sh >/dev/null
fi
