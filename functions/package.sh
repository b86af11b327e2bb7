#!/usr/bin/env bash
# Stage the Cloud Functions source: main.py + requirements.txt + the rollerblade package.
# Usage: functions/package.sh OUTDIR   (Terraform zips OUTDIR; see terraform/functions.tf)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: functions/package.sh OUTDIR}
rm -rf "$out" && mkdir -p "$out"
cp "$here/main.py" "$here/requirements.txt" "$out/"
cp -r "$here/../shared/rollerblade" "$out/rollerblade"
find "$out" -name __pycache__ -prune -exec rm -rf {} +
echo "$out"
