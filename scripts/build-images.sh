#!/usr/bin/env bash
# Builds Pincer's images without any registry: service binaries are compiled on the host
# (release profile) and copied onto the locally made base image (scripts/setup-docker.sh).
# Also builds the sandbox image. Idempotent; rebuilding is cheap when nothing changed.
#
#   bash scripts/build-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pincer-target}
BASE=${PINCER_BASE_IMAGE:-pincer-base:bookworm}
log() { printf '[build-images] %s\n' "$*" >&2; }

cargo build --release --locked --workspace --bins
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/dist"
cp images/Dockerfile.prebuilt "$ctx/Dockerfile"
for bin in pincer pincer-gateway pincer-agent pincer-executor pincer-docker-guard pincer-bridge pincer-fake-llm pincer-fake-telegram; do
  cp "$CARGO_TARGET_DIR/release/$bin" "$ctx/dist/$bin"
done
build() { # tag service
  log "building $1"
  docker build --quiet --build-arg "BASE=$BASE" --build-arg "SERVICE=$2" -t "$1" "$ctx" >/dev/null
}
build pincer-gateway:local pincer-gateway
build pincer-agent:local pincer-agent
build pincer-executor:local pincer-executor
build pincer-bridge:local pincer-bridge
build pincer-docker-guard:local pincer-docker-guard
build pincer-fake-llm:local pincer-fake-llm
build pincer-fake-telegram:local pincer-fake-telegram
bash images/sandbox/build.sh
log "done"
