#!/usr/bin/env bash
# Runs every test: unit tests (vitest) and end-to-end tests (Playwright in Debian's Chromium). Reports go to reports/
# installing Chromium through apt-get when it is missing, then prints one line "N passed, N failed".
# Also installs Debian's python3-torchvision when it is missing and exports the model zoo (scripts/make-zoo.py).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "Chromium is missing: installing Debian's chromium package…"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium || { echo "could not install chromium"; exit 1; }
fi
if ! /usr/bin/python3 -c 'import torchvision' 2>/dev/null; then
  echo "torchvision is missing: installing Debian's python3-torchvision (the model zoo's exporter)…"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-torchvision || { echo "could not install python3-torchvision"; exit 1; }
fi
[ -d node_modules ] || npm ci

# the model zoo (torchvision CNNs with random weights, ~280 MB in the gitignored .cache/zoo) that
# src/core/graph/zoo.test.ts reads; models already exported by this version of the script are skipped
/usr/bin/python3 scripts/make-zoo.py || echo "scripts/make-zoo.py failed: the zoo tests will say what is missing"

mkdir -p reports
rm -f reports/vitest.json reports/playwright.json

npx vitest run --reporter=default --reporter=json --outputFile.json=reports/vitest.json
unit=$?
PLAYWRIGHT_JSON_OUTPUT_NAME=reports/playwright.json npx playwright test --reporter=list,json
e2e=$?

node scripts/count-results.mjs reports/vitest.json reports/playwright.json
counted=$?
[ $unit -eq 0 ] && [ $e2e -eq 0 ] && [ $counted -eq 0 ]
