#!/usr/bin/env bash
# Runs every test tier that exists, on a fresh Debian machine with only the Rust toolchain,
# Python, gcc and a Docker client: it installs the Docker engine, the compose plugin and a
# local base image first (scripts/setup-docker.sh, idempotent).
#
#   ./scripts/test.sh            everything
#   PINCER_SKIP_DOCKER=1 ...     skip the tiers that need Docker (local use only; CI never sets it)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pincer-target}
export CARGO_TERM_COLOR=never
start=$(date +%s)
passed=0
failed=0
summary=()

tier() { # name command...
  local name=$1; shift
  local t0=$(date +%s)
  echo "=== tier: $name"
  if "$@"; then
    passed=$((passed + 1)); summary+=("PASS $name ($(( $(date +%s) - t0 ))s)")
  else
    failed=$((failed + 1)); summary+=("FAIL $name ($(( $(date +%s) - t0 ))s)")
  fi
}

if [ "${PINCER_SKIP_DOCKER:-0}" != 1 ]; then
  tier "setup (docker engine, compose, base image)" bash scripts/setup-docker.sh
fi
tier "setup (real peers: nginx, ngircd, dovecot, opensmtpd, synapse)" bash scripts/setup-peers.sh
tier "format" cargo fmt --all --check
tier "lint (clippy -D warnings)" cargo clippy --workspace --all-targets --locked -- -D warnings
tier "build (service binaries)" cargo build --workspace --bins --locked
if [ "${PINCER_SKIP_DOCKER:-0}" != 1 ]; then
  tier "sandbox image" bash images/sandbox/build.sh
fi
tier "unit + service + real-peer + e2e via pincer up (cargo test)" cargo test --workspace --locked --no-fail-fast
if [ "${PINCER_SKIP_DOCKER:-0}" != 1 ]; then
  tier "images (offline build)" bash scripts/build-images.sh
  tier "e2e via docker compose" python3 tests/compose/test_compose.py
fi

echo
echo "=== summary ($(( $(date +%s) - start ))s)"
printf '%s\n' "${summary[@]}"
echo "tiers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
