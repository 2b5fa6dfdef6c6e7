#!/usr/bin/env bash
# Arguments arrive as shell variables from the flwd profile ($name, $loud, the
# array $tags) and as ARG_* environment variables; the secret only as a file
# ($ARG_SECRET_TOKEN_FILE), which the profile reads into $secret_token.
set -euo pipefail
# Also runnable without flwd: name=x loud=false bash scripts/demo/100_main.sh
declare -p tags >/dev/null 2>&1 || tags=()

greeting="Hello, ${name}!"
if [ "${loud}" = true ]; then
  greeting="${greeting^^}"
fi
echo "demo: ${greeting}"
if ((${#tags[@]})); then
  echo "demo: tags: ${tags[*]}"
fi
if [ -n "${secret_token-}" ]; then
  echo "demo: secret token received (${#secret_token} characters)"
fi
echo "demo: completed"
