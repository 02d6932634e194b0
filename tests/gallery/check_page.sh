#!/usr/bin/env bash
# Opens a generated gallery page in headless Chromium and checks that every image loaded
# (naturalWidth > 0), that the page logged no console errors, and saves a screenshot.
#   check_page.sh <dir with index.html> <screenshot.png>
set -euo pipefail
dir=$(cd "$1" && pwd)
shot=$2
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then echo "check_page: chromium not installed (Debian package chromium)"; exit 1; fi
[ -f "$dir/index.html" ] || { echo "check_page: $dir/index.html missing"; exit 1; }

# A copy of the page with a probe appended: after load it lists broken images into the DOM.
probe="$dir/.check_page.html"
trap 'rm -f "$probe"; rm -rf "$profile"' EXIT
profile=$(mktemp -d)
sed 's#</body>#<script>window.addEventListener("load",()=>{const imgs=[...document.images];const bad=imgs.filter(i=>!(i.complete\&\&i.naturalWidth>0)).map(i=>i.getAttribute("src"));const p=document.createElement("pre");p.id="probe";p.textContent="IMAGES "+imgs.length+" BROKEN "+bad.length+" "+bad.join(" ");document.body.appendChild(p);});</script></body>#' \
  "$dir/index.html" > "$probe"
flags=(--headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run --disable-component-update
       --disable-sync --disable-quic --user-data-dir="$profile" --virtual-time-budget=10000)
dom=$("$browser" "${flags[@]}" --enable-logging=stderr --v=1 --dump-dom "file://$probe" 2> "$profile/console.log")
result=$(printf '%s' "$dom" | grep -o 'IMAGES [0-9]* BROKEN [0-9]*[^<]*' || true)
echo "check_page: $result"
[ -n "$result" ] || { echo "check_page: the probe did not run"; exit 1; }
images=$(echo "$result" | awk '{print $2}')
broken=$(echo "$result" | awk '{print $4}')
[ "$images" -gt 0 ] || { echo "check_page: no images on the page"; exit 1; }
[ "$broken" -eq 0 ] || { echo "check_page: broken images: $result"; exit 1; }
# Console messages of the page itself (the page has no scripts of its own, so any is an error).
if grep -E ":CONSOLE|Uncaught" "$profile/console.log" > "$profile/errors.txt"; then
  echo "check_page: console errors:"; cat "$profile/errors.txt"; exit 1
fi
"$browser" "${flags[@]}" --screenshot="$shot" --window-size=1280,4000 "file://$dir/index.html" 2>/dev/null
[ -s "$shot" ] || { echo "check_page: no screenshot written"; exit 1; }
echo "check_page: OK, $images images loaded, screenshot $shot"
