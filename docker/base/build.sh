#!/usr/bin/env bash
# Build (or restore from cache) the base image every example Analysis starts FROM:
# Debian bookworm minbase + Python 3.11 + numpy (Debian) + scipy, nibabel (wheels).
# No registry is contacted: the root filesystem comes from debootstrap and the Debian
# mirror, the wheels from PyPI, and `docker import` turns it into an image.
#
#   docker/base/build.sh            -> tags rollerblade/base:py311 (and :py311-<key>)
#
# The key hashes this script and the pinned versions; a saved image in
# $ROLLERBLADE_CACHE (default ~/.cache/rollerblade) is loaded instead of rebuilding.
set -euo pipefail
REQS="scipy==1.15.3 nibabel==5.3.3 packaging==26.4 importlib_resources==7.1.0 typing_extensions==4.16.0"
PIPV=26.3
STABLE=rollerblade/base:py311
KEY=$( { cat "$0"; echo "$REQS $PIPV"; } | sha256sum | cut -c1-12)
IMG=rollerblade/base:py311-$KEY
CACHE_DIR=${ROLLERBLADE_CACHE:-$HOME/.cache/rollerblade}
CACHE=$CACHE_DIR/base-$KEY.tar.gz
WORK=$(mktemp -d /tmp/rollerblade-base.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if docker image inspect "$IMG" >/dev/null 2>&1; then
  docker tag "$IMG" "$STABLE"; echo "base image $IMG present" >&2; exit 0
fi
if [ -f "$CACHE" ]; then
  echo "base image: loading $CACHE" >&2
  docker load -q -i "$CACHE" >&2 && docker tag "$IMG" "$STABLE" && exit 0
fi
echo "base image: building $IMG with debootstrap (about 2 minutes, once)" >&2
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
R=$WORK/rootfs
mkdir -p "$WORK/wheels" "$CACHE_DIR"
debootstrap --variant=minbase --include=python3,python3-numpy bookworm "$R" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
# numpy comes from Debian (1.24), which satisfies scipy and nibabel: download without deps
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
  -d "$WORK/wheels" "pip==$PIPV" $REQS
mkdir -p "$R/tmp/wheels"; cp "$WORK"/wheels/*.whl "$R/tmp/wheels/"
chroot "$R" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
  python3 "/tmp/wheels/pip-$PIPV-py3-none-any.whl/pip" install -q --no-index --find-links /tmp/wheels \
  --break-system-packages --root-user-action=ignore --no-cache-dir $REQS
chroot "$R" python3 -c 'import numpy, scipy.ndimage, nibabel'
mkdir -p "$R/app"
rm -rf "$R"/tmp/wheels "$R"/root/.cache "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin \
  "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/* \
  "$R"/usr/share/locale/* "$R"/var/log/*.log "$R"/var/log/apt/*   # keep __pycache__: containers run read-only
tar --numeric-owner -C "$R" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' --change 'WORKDIR /app' --change 'CMD ["python3"]' - "$IMG" >&2
docker tag "$IMG" "$STABLE"
docker save "$IMG" | gzip -1 > "$CACHE.tmp" && mv "$CACHE.tmp" "$CACHE"
echo "base image: built $IMG, cached in $CACHE" >&2
