#!/usr/bin/env bash
# Builds the sandbox image (default tag pincer-sandbox:latest), idempotently: skips the
# build when an image with that tag exists and was built from this Dockerfile and base
# (label pincer.sandbox.source = sha256 of the Dockerfile, the egress relay and the base's
# name).
#
#   bash images/sandbox/build.sh [TAG]
#
# Base image: $PINCER_SANDBOX_BASE if set; else the local pincer-base:bookworm when present
# (made offline by scripts/setup-docker.sh); else debian:bookworm-slim (pulled).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag=${1:-${PINCER_SANDBOX_IMAGE:-pincer-sandbox:latest}}

log() { printf '[sandbox-image] %s\n' "$*" >&2; }

if [ -n "${PINCER_SANDBOX_BASE:-}" ]; then
  base=$PINCER_SANDBOX_BASE
elif docker image inspect pincer-base:bookworm >/dev/null 2>&1; then
  base=pincer-base:bookworm
else
  base=debian:bookworm-slim
fi

source_sum=$( { cat "$here/Dockerfile" "$here/egress-relay.py"; printf 'BASE=%s\n' "$base"; } | sha256sum | cut -d' ' -f1)
current=$(docker image inspect --format '{{ index .Config.Labels "pincer.sandbox.source" }}' "$tag" 2>/dev/null || true)
if [ "$current" = "$source_sum" ]; then
  log "$tag is up to date (base $base)"
  exit 0
fi

log "building $tag from base $base"
docker build --quiet \
  --build-arg "BASE=$base" \
  --label "pincer.sandbox.source=$source_sum" \
  -t "$tag" "$here" >/dev/null
log "built $tag"
