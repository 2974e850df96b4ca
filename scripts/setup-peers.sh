#!/usr/bin/env bash
# Installs the real peers the tests run against (idempotent): nginx, for the reverse-proxy
# tests. Package postinst scripts are told not to start services (the tests start their
# own instances on loopback).
set -euo pipefail
log() { printf '[setup-peers] %s\n' "$*" >&2; }

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -eq 0 ]; then
  log "ready: nginx"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  log "need root to install: ${missing[*]}"
  exit 1
fi
log "installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get -o DPkg::Lock::Timeout=600 -q update >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q install --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package may have started a default server anyway; the tests run their own.
if [ -f /run/nginx.pid ]; then
  kill "$(cat /run/nginx.pid)" 2>/dev/null || true
fi
log "ready: nginx"
