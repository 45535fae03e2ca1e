#!/usr/bin/env bash
# Copy the official CometD JavaScript client (npm `cometd`, pinned in package-lock.json) into
# www/js/cometd/, which the demo pages import as ES modules. No CDN: the pages only load files
# served from this tree. Idempotent; `make www`, `make run` and tests/e2e/run.sh call it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -f node_modules/cometd/cometd.js ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
mkdir -p js/cometd
for f in node_modules/cometd/*.js; do
  cmp -s "$f" "js/cometd/${f##*/}" || cp "$f" "js/cometd/${f##*/}"
done
cp node_modules/cometd/LICENSE js/cometd/LICENSE
echo "www: CometD $(node -p 'require("./node_modules/cometd/package.json").version') in www/js/cometd/"
