#!/usr/bin/env bash
# Headless Chromium for the website's browser test (tests/test_site.py), from Debian's chromium package, with
# Noto CJK fonts so that the Chinese pages' screenshots show their text. Install it when we can (root with apt);
# otherwise say how, and carry on: the test skips itself without a browser. Without recommends: Debian's chromium
# recommends printing, audio and desktop services that a headless browser never uses (installed with them here, the
# two packages brought 114 others and took 85 s, by /var/log/apt/history.log).
set -u
if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk || { apt-get update -q && apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk; }) \
    >/dev/null 2>&1 && { echo "installed Debian chromium"; exit 0; }
fi
echo "note: Chromium is not installed (sudo apt-get install chromium fonts-noto-cjk);" \
     "tests/test_site.py will skip the website's browser checks." >&2
exit 0
