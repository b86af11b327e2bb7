#!/usr/bin/env bash
# Build Rollerblade's own image on this machine, offline, FROM the Analyses' base image
# (docker/base/build.sh): the wheels of this checkout and its dependencies are made on the
# host, and `docker build --network none` installs them. Prints the image id; the tag is
# rollerblade/rollerblade:dev-<key>, the key hashing the sources, so an unchanged checkout
# reuses the image. (Cloud Build builds the same Dockerfile FROM python:3.11-slim, with
# the gcp extras.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
key=$( (cat "$here/Dockerfile" "$here/build.sh" "$root/pyproject.toml"; \
        cd "$root" && find shared/rollerblade -name '*.py' -o -name 'py.typed' | sort | xargs cat) | sha256sum | cut -c1-12)
tag=rollerblade/rollerblade:dev-$key
if docker image inspect "$tag" >/dev/null 2>&1; then docker image inspect -f '{{.Id}}' "$tag"; exit 0; fi
"$root/docker/base/build.sh" >&2
cache=${ROLLERBLADE_CACHE:-$HOME/.cache/rollerblade}
deps_key=$( (cat "$root/pyproject.toml" "$here/build.sh") | sha256sum | cut -c1-12)
deps=$cache/rollerblade-wheels-$deps_key
work=$(mktemp -d /tmp/rollerblade-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/docker/rollerblade/wheels"
python3 -m pip wheel -q --no-deps -w "$work/docker/rollerblade/wheels" "$root" >&2
if [ ! -d "$deps" ]; then
  echo "rollerblade image: downloading dependency wheels (once)" >&2
  python3 -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    -d "$deps.partial" pip==26.3 "$(ls "$work"/docker/rollerblade/wheels/rollerblade-*.whl)" >&2
  mv "$deps.partial" "$deps"
fi
cp "$deps"/*.whl "$work/docker/rollerblade/wheels/"
cp "$here/Dockerfile" "$work/docker/rollerblade/Dockerfile"
echo "rollerblade image: building $tag" >&2
docker build -q --network none --build-arg BASE=rollerblade/base:py311 --build-arg EXTRAS= \
  -f "$work/docker/rollerblade/Dockerfile" -t "$tag" "$work" >&2
docker image inspect -f '{{.Id}}' "$tag"
