#!/usr/bin/env bash
# Installs what hotloop needs on a Debian host, then builds it.
#   runtime: bpftrace and perf (the capture backends), c++filt (demangled C++/Rust names)
#   test:    runtime + gcc (test workloads), golang-go (`go tool pprof` reads our output)
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

need=()
command -v bpftrace >/dev/null || need+=(bpftrace)
command -v perf >/dev/null || need+=(linux-perf)
command -v c++filt >/dev/null || need+=(binutils)
if [ "$profile" = test ]; then
  command -v gcc >/dev/null || need+=(gcc libc6-dev)
  command -v go >/dev/null || need+=(golang-go)
  command -v openssl >/dev/null || need+=(openssl)
  command -v strace >/dev/null || need+=(strace)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "hotloop setup: missing ${need[*]}; run as root (the agent needs root anyway)" >&2
    exit 1
  fi
  echo "hotloop setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npx --no-install tsc -p .
