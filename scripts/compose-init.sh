#!/usr/bin/env bash
# Creates the Docker secrets compose.yaml expects, in ./.secrets (directory 0700), without
# overwriting existing ones:
#   gateway_token, gateway_credential, bridge_credential, agent_credential,
#   executor_credential  (random, 32 bytes)
#   llm_api_key, telegram_bot_token  (from $PINCER_LLM_API_KEY / $PINCER_TELEGRAM_BOT_TOKEN,
#                                     or placeholders you replace with real values)
# The services run as uid 10001: when run as root the files are given to that uid, mode 0600.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.secrets
mkdir -p "$dir"
chmod 0700 "$dir"
put() { # name value
  local f="$dir/$1"
  [ -s "$f" ] && return 0
  printf '%s' "$2" >"$f"
  if [ "$(id -u)" -eq 0 ]; then chown 10001:10001 "$f"; chmod 0600 "$f"; else chmod 0644 "$f"; fi
  echo "created $f"
}
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
put gateway_token "$(rand)"
put gateway_credential "$(rand)"
put bridge_credential "$(rand)"
put agent_credential "$(rand)"
put executor_credential "$(rand)"
put llm_api_key "${PINCER_LLM_API_KEY:-replace-with-your-api-key}"
put telegram_bot_token "${PINCER_TELEGRAM_BOT_TOKEN:-123456:PINCER-DEMO-TOKEN}"
if [ "$(id -u)" -ne 0 ]; then
  echo "note: not root, so the secret files are 0644 inside the 0700 directory $dir (the containers' uid 10001 must read them)"
fi
