#!/usr/bin/env bash
# Installs the proxies the sidecar is measured against (`cargo bench --bench proxy -- --peers`)
# and the load generators used beside the bench's own: haproxy, nginx (nginx-light), wrk and
# h2load (nghttp2-client), all from Debian. Idempotent: installs only what is missing, and
# never leaves an nginx or haproxy service running (the bench starts its own, one worker each).
set -euo pipefail

declare -A command_of=(
  [haproxy]=haproxy
  [nginx-light]=nginx
  [wrk]=wrk
  [nghttp2-client]=h2load
)

missing=()
for package in "${!command_of[@]}"; do
  if ! command -v "${command_of[$package]}" >/dev/null 2>&1 \
    && ! [ -x "/usr/sbin/${command_of[$package]}" ]; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "peers already installed: ${!command_of[*]}"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  as_root=(sudo)
fi

# Debian starts a package's service on install; the bench wants the machine quiet.
policy=/usr/sbin/policy-rc.d
added_policy=false
if ! [ -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod +x "$policy"
  added_policy=true
fi
cleanup() {
  if $added_policy; then "${as_root[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT

echo "installing: ${missing[*]}"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
