#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser tests (tests/browser.py).
#
# Idempotent: does nothing when the `chromium` package is already installed; runs `apt-get update`
# only when it has to install. Needs root (or sudo).
set -euo pipefail

# (compared whole, not piped to `grep -q`: under pipefail an early exit of grep fails the test)
if [ "$(dpkg-query -W -f='${Status}' chromium 2>/dev/null)" = "install ok installed" ]; then
    echo "chromium already installed: $(chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y chromium
echo "chromium installed: $(chromium --version 2>/dev/null || echo /usr/bin/chromium)"
