#!/usr/bin/env bash
# Runs every test: unit tests (vitest) and end-to-end tests (Playwright in Debian's Chromium). Reports go to reports/
# installing Chromium through apt-get when it is missing, then prints one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "Chromium is missing: installing Debian's chromium package…"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium || { echo "could not install chromium"; exit 1; }
fi
[ -d node_modules ] || npm ci

mkdir -p reports
rm -f reports/vitest.json reports/playwright.json

npx vitest run --reporter=default --reporter=json --outputFile.json=reports/vitest.json
unit=$?
PLAYWRIGHT_JSON_OUTPUT_NAME=reports/playwright.json npx playwright test --reporter=list,json
e2e=$?

node scripts/count-results.mjs reports/vitest.json reports/playwright.json
counted=$?
[ $unit -eq 0 ] && [ $e2e -eq 0 ] && [ $counted -eq 0 ]
