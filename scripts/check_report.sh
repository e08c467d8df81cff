#!/usr/bin/env bash
# Open a `latentreason analyze` report in headless Chromium (Debian: apt-get install -y chromium) and
# check that every image in it loaded; optionally save a screenshot of the page.
#   scripts/check_report.sh path/to/report.html [screenshot.png [width,height]]
# Prints "images loaded N/N" and exits 0 when every image loaded, 1 otherwise. Works offline.
set -euo pipefail
report=$(realpath "${1:?usage: scripts/check_report.sh REPORT.html [SCREENSHOT.png [WIDTH,HEIGHT]]}")
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "error: no Chromium found; install it (Debian: apt-get install -y chromium)" >&2
  exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
       --disable-sync --no-first-run --user-data-dir="$profile" --virtual-time-budget=10000)
# The report's own script counts the images that decoded and writes "images loaded N/M" into the title.
title=$("$browser" "${flags[@]}" --dump-dom "file://$report" 2>/dev/null | grep -o '<title>[^<]*</title>' | sed 's/<[^>]*>//g')
echo "$title"
if [ -n "${2:-}" ]; then
  "$browser" "${flags[@]}" --hide-scrollbars --window-size="${3:-1300,1800}" --screenshot="$(realpath -m "$2")" "file://$report" >/dev/null 2>&1
  echo "screenshot: $2"
fi
if [[ "$title" =~ ^images\ loaded\ ([0-9]+)/([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] && [ "${BASH_REMATCH[2]}" -gt 0 ]; then
  exit 0
fi
echo "error: not every image of $report loaded (or the page did not run its check)" >&2
exit 1
