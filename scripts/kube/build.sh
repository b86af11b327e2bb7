#!/usr/bin/env bash
# Build the Kubernetes binaries the gke executor's tests run against (a real kube-apiserver,
# kube-controller-manager with the Job controller, kube-scheduler and kubelet), offline,
# from Debian bookworm's source package. Cached by source version and patch content:
#   ~/.cache/rollerblade/kube-<version>-<hash>/{kube-apiserver,kube-controller-manager,
#                                               kube-scheduler,kubelet,pause.tar}
# Prints the cache folder. See ../shared/notes/kubernetes-and-terraform.md for why each
# source change is needed on this machine (no CAP_SYS_RESOURCE; no cloud metadata probes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
VERSION=1.20.5+really1.20.2-1.1+deb12u1
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"

root="${ROLLERBLADE_CACHE:-$HOME/.cache/rollerblade}"
# The control plane is built unpatched from the source version; the kubelet and pause
# image also depend on this script's patches. Each part is cached on its own key.
cp_cache="$root/kube-cp-$(echo "$VERSION" | sha256sum | cut -c1-12)"
node_key=$( (echo "$VERSION"; sed -n '/^# -- kubelet patches/,/^# -- end of patches/p' "$here/build.sh") | sha256sum | cut -c1-12)
cache="$root/kube-1.20.2-$node_key"
bins="kube-apiserver kube-controller-manager kube-scheduler kubelet"
ok=1
for b in $bins pause.tar; do [ -s "$cache/$b" ] || ok=0; done
if [ $ok = 1 ]; then echo "$cache"; exit 0; fi
cp_ok=1
for b in kube-apiserver kube-controller-manager kube-scheduler; do [ -s "$cp_cache/$b" ] || cp_ok=0; done

need=()
for pkg in golang-go jq rsync etcd-server dpkg-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "kube: installing Debian packages: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/kube-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial"
# A private apt configuration with only a deb-src line: the machine's own lists stay untouched.
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
echo "deb-src $uri bookworm main" > "$work/apt/sources.list"
aptopts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
         -o "Dir::State::Lists=$work/apt/lists")
echo "kube: downloading the kubernetes source package ($VERSION)" >&2
apt-get "${aptopts[@]}" update -qq >&2
(cd "$work" && apt-get "${aptopts[@]}" source --download-only "kubernetes=$VERSION" >&2)
(cd "$work" && tar xf kubernetes_*.orig.tar.* )
src=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)

echo "kube: patching the kubelet for this machine" >&2
# -- kubelet patches (part of the cache key) ---------------------------------------------
# 1-2. No negative oom_score_adj: root here lacks CAP_SYS_RESOURCE, runc refuses it.
sed -i 's/defaultSandboxOOMAdj\( *int *\)\?= -998/defaultSandboxOOMAdj\1= 0/' \
  "$src/pkg/kubelet/dockershim/docker_sandbox.go"
grep -q 'defaultSandboxOOMAdj.*= 0' "$src/pkg/kubelet/dockershim/docker_sandbox.go"
sed -i 's/return guaranteedOOMScoreAdj/return 0/' "$src/pkg/kubelet/qos/policy.go"
! grep -q 'return guaranteedOOMScoreAdj' "$src/pkg/kubelet/qos/policy.go"
# 3. No AWS credential provider: it probes 169.254.169.254 at start-up.
sed -i '/credentialprovider\/aws/d' "$src/cmd/kubelet/app/plugins.go"
# 4. Pods have no network plugin here, so no IP: keep their sandbox instead of replacing
#    it on every sync (which kills a pod's running container between its init containers).
sed -i 's/if !kubecontainer.IsHostNetworkPod(pod) \&\& sandboxStatus.Network.Ip == "" {/if false \&\& sandboxStatus.Network.Ip == "" {/' \
  "$src/pkg/kubelet/kuberuntime/kuberuntime_manager.go"
grep -q 'if false && sandboxStatus.Network.Ip == ""' "$src/pkg/kubelet/kuberuntime/kuberuntime_manager.go"
# -- end of patches ----------------------------------------------------------------------

export CGO_ENABLED=0
mkdir -p "$work/out"
if [ $cp_ok = 1 ]; then
  cp "$cp_cache"/kube-* "$work/out/"
else
  echo "kube: building the control plane (several minutes)" >&2
  (cd "$src" && make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2)
  mkdir -p "$cp_cache.partial"
  for b in kube-apiserver kube-controller-manager kube-scheduler; do cp "$src/_output/bin/$b" "$cp_cache.partial/"; done
  rm -rf "$cp_cache"; mv "$cp_cache.partial" "$cp_cache"
  cp "$cp_cache"/kube-* "$work/out/"
fi
echo "kube: building the kubelet (several minutes)" >&2
(cd "$src" && GOFLAGS=-tags=providerless make WHAT="cmd/kubelet" >&2)
cp "$src/_output/bin/kubelet" "$work/out/"

echo "kube: building the pause image" >&2
mkdir -p "$work/pause"
gcc -Os -static -DVERSION=rollerblade -o "$work/pause/pause" "$src/build/pause/linux/pause.c"
strip "$work/pause/pause"
tar -C "$work/pause" -cf "$work/out/pause.tar" pause

mkdir -p "$cache.partial"
cp "$work"/out/* "$cache.partial/"
rm -rf "$cache"; mv "$cache.partial" "$cache"
echo "$cache"
