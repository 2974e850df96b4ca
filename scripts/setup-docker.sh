#!/usr/bin/env bash
# Installs and starts what the container tests need, idempotently:
#   - a Docker engine (Debian's docker.io) and a running dockerd,
#   - the compose v2 CLI plugin (from Debian trixie's docker-compose package),
#   - a local base image `pincer-base:bookworm` made with mmdebstrap (no registry pull).
# Safe to run again: every step checks whether its work is already done.
set -euo pipefail

APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
STATE_DIR=${PINCER_SETUP_DIR:-/var/tmp/pincer-setup}
BASE_IMAGE=${PINCER_BASE_IMAGE:-pincer-base:bookworm}
mkdir -p "$STATE_DIR"

log() { printf '[setup-docker] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "this step needs root (apt-get, dockerd); re-run as root or install Docker yourself"
    exit 1
  fi
}

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    "${APT[@]}" update >/dev/null
    apt_updated=1
  fi
}

# 1. Docker engine.
if ! command -v dockerd >/dev/null 2>&1; then
  need_root
  log "installing docker.io"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install --no-install-recommends docker.io iptables ca-certificates >/dev/null
fi

# 2. Compose v2 plugin.
plugin_dir=/usr/local/lib/docker/cli-plugins
if ! docker compose version >/dev/null 2>&1; then
  need_root
  log "installing the compose plugin from Debian trixie's docker-compose package"
  trixie="$STATE_DIR/trixie-apt"
  mkdir -p "$trixie/lists/partial" "$trixie/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" >"$trixie/sources.list"
  trixie_apt=(-o "Dir::Etc::sourcelist=$trixie/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$trixie/lists" -o "Dir::Cache::Archives=$trixie/archives"
    -o "APT::Get::List-Cleanup=0")
  apt-get -o DPkg::Lock::Timeout=600 -q "${trixie_apt[@]}" update >/dev/null
  (cd "$trixie" && apt-get -q "${trixie_apt[@]}" download docker-compose >/dev/null)
  deb=$(ls "$trixie"/docker-compose_*.deb | head -n 1)
  rm -rf "$trixie/x" && mkdir -p "$trixie/x"
  dpkg-deb -x "$deb" "$trixie/x"
  mkdir -p "$plugin_dir"
  install -m 0755 "$trixie/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin_dir/docker-compose"
  docker compose version >/dev/null
fi

# 3. A running engine.
if ! docker info >/dev/null 2>&1; then
  need_root
  log "starting dockerd"
  # Some hosts lack the nf_tables/iptables modules dockerd wants; fall back to no iptables management.
  nohup dockerd >"$STATE_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "dockerd did not come up; its log:"
    tail -n 40 "$STATE_DIR/dockerd.log" >&2
    exit 1
  fi
fi

# 4. A local base image, made without any registry.
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  need_root
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install --no-install-recommends mmdebstrap >/dev/null
  fi
  log "building $BASE_IMAGE with mmdebstrap (about half a minute)"
  tarball="$STATE_DIR/base.tar"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$tarball" http://deb.debian.org/debian
  docker import "$tarball" "$BASE_IMAGE" >/dev/null
  rm -f "$tarball"
fi

log "ready: $(docker version --format 'engine {{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /'), base image $BASE_IMAGE"
