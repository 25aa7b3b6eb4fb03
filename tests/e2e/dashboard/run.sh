#!/usr/bin/env bash
# Dashboard e2e: report.html of real simulator runs in headless Chromium.
#   run.sh RIFT_BINARY SOURCE_DIR ARTIFACT_DIR
# Exit 77 (ctest: skipped) only when Chromium is missing or cannot start;
# playwright-core missing is a failure (scripts/bootstrap runs npm ci).
# Screenshots go to ARTIFACT_DIR.
set -u
rift=$1 src=$2 artifacts=$3
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "FAIL: node is not installed (scripts/bootstrap installs it)"; exit 1; }
chromium=${CHROMIUM:-}
for c in /usr/bin/chromium /usr/bin/chromium-browser; do
  [ -z "$chromium" ] && [ -x "$c" ] && chromium=$c
done
[ -n "$chromium" ] || { echo "SKIP: no chromium (apt-get install chromium; scripts/bootstrap does)"; exit 77; }
[ -d "$src/dashboard/node_modules/playwright-core" ] ||
  { echo "FAIL: playwright-core missing: run 'npm ci' in $src/dashboard (scripts/bootstrap does)"; exit 1; }
mkdir -p "$artifacts"
export RIFT="$rift" RIFT_SRC="$src" RIFT_ARTIFACTS="$artifacts" CHROMIUM="$chromium"
# Can Chromium start here at all? (A missing sandbox or display is handled by the flags.)
if ! node "$here/probe.mjs" >"$artifacts/probe.log" 2>&1; then
  echo "SKIP: chromium cannot start:"; tail -5 "$artifacts/probe.log"; exit 77
fi
exec node --test --test-reporter=spec "$here/dashboard.test.mjs"
