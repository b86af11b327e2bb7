#!/usr/bin/env bash
# Start a local Docker engine if none answers, as the network rule requires:
# no bridge, no iptables (containers run with --network none). Prints the PID it started
# (nothing when an engine was already running). Usage: scripts/dockerd.sh [LOGFILE]
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then
  echo "dockerd not installed: apt-get install docker.io (scripts/setup.sh does)" >&2; exit 1
fi
log=${1:-/tmp/rollerblade-dockerd.log}
setsid dockerd --bridge=none --iptables=false --ip6tables=false >"$log" 2>&1 < /dev/null &
pid=$!
for _ in $(seq 1 300); do
  if docker info >/dev/null 2>&1; then echo "$pid"; exit 0; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "dockerd exited; see $log" >&2; tail -5 "$log" >&2; exit 1; fi
  sleep 0.1
done
echo "dockerd did not become ready in 30 s; see $log" >&2; exit 1
