#!/usr/bin/env bash
# Installs the real peers the tests run against (idempotent):
#   - from Debian: nginx (reverse-proxy tests), ngircd (IRC), dovecot IMAP + LMTP and
#     OpenSMTPD (e-mail);
#   - from PyPI: Synapse (Matrix), in a venv under ${PINCER_PEERS_DIR:-/var/tmp/pincer-peers}.
# Package postinst scripts are told not to start services: the tests start their own
# instances on loopback, each with its own config in a temporary directory.
set -euo pipefail
log() { printf '[setup-peers] %s\n' "$*" >&2; }

peers_dir=${PINCER_PEERS_DIR:-/var/tmp/pincer-peers}
synapse_version=${PINCER_SYNAPSE_VERSION:-1.163.2}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
have nginx || missing+=(nginx)
have ngircd || missing+=(ngircd)
have dovecot || missing+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
have smtpd || missing+=(opensmtpd)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)

if [ "${#missing[@]}" -gt 0 ]; then
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
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q install \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's packages may have started default servers anyway; the tests run their own.
if [ -f /run/nginx.pid ]; then
  kill "$(cat /run/nginx.pid)" 2>/dev/null || true
fi

venv="$peers_dir/synapse-venv"
if ! "$venv/bin/python" -c 'import synapse' >/dev/null 2>&1; then
  log "installing Synapse $synapse_version from PyPI into $venv"
  mkdir -p "$peers_dir"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 needs python3-venv for ensurepip.
    if [ "$(id -u)" -eq 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q install \
        --no-install-recommends python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "matrix-synapse==$synapse_version"
fi
log "ready: nginx ngircd dovecot opensmtpd synapse ($("$venv/bin/python" -c 'import synapse; print(synapse.__version__)'))"
