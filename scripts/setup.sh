#!/usr/bin/env bash
# Installs what building, running and testing the relay needs.
# Idempotent: silent when everything is present, one line per thing it installs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'setup: %s\n' "$*"; }

# Runs a command with its output kept in a log; prints the log only on failure.
quietly() {
    local log
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "setup: failed: $*" >&2
        return 1
    fi
    rm -f "$log"
}

# --- Debian packages -------------------------------------------------------
DEB_PACKAGES=(
    pkg-config
    libssl-dev          # TLS (OpenSSL)
    libnghttp2-dev      # HTTP/2
    libdeflate-dev      # permessage-deflate (inflate)
    zlib1g-dev          # permessage-deflate (deflate)
    libhiredis-dev      # cluster topology in Redis
    redis-server        # cluster tests
    chromium            # browser-page tests
    chromium-driver
    nghttp2-client      # nghttp / h2load
    openssl             # TLS tests: test certificates, s_client
    curl                # TLS tests: https:// with a CA file
    python3-venv        # python3 -m venv when python3 is Debian's
)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo -n); fi
    export DEBIAN_FRONTEND=noninteractive
    quietly "${SUDO[@]}" apt-get update
    for pkg in "${missing[@]}"; do say "installing Debian package $pkg"; done
    quietly "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- Python venv -----------------------------------------------------------
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"

if ! "$VENV/bin/python" -c '' >/dev/null 2>&1 || [[ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]]; then
    # Made anew, so that a package taken out of requirements.txt goes too.
    say "creating .venv with the Python packages of scripts/requirements.txt"
    rm -rf "$VENV"
    quietly python3 -m venv "$VENV"
    quietly "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"
    echo "$want" >"$STAMP"
fi

# --- xterm.js browser assets (third-party; never committed) ----------------
# Taken from the PyPI source package webssh==1.6.3, which ships xterm.js.
WEB="$ROOT/.cache/web"
ASSETS=(js/xterm.min.js js/xterm-addon-fit.min.js css/xterm.min.css)
need_assets=0
for a in "${ASSETS[@]}"; do
    [[ -s "$WEB/$(basename "$a")" ]] || need_assets=1
done
if ((need_assets)); then
    say "fetching xterm.js assets (webssh==1.6.3 from PyPI) into .cache/web"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    quietly "$VENV/bin/python" -m pip download --disable-pip-version-check -q \
        --no-deps webssh==1.6.3 -d "$tmp"
    mkdir -p "$WEB"
    "$VENV/bin/python" - "$tmp" "$WEB" "${ASSETS[@]}" <<'PY'
import glob, os, sys, tarfile
tmp, web, assets = sys.argv[1], sys.argv[2], sys.argv[3:]
(archive,) = glob.glob(os.path.join(tmp, "webssh-1.6.3.tar.gz"))
with tarfile.open(archive) as tar:
    for a in assets:
        member = tar.extractfile(f"webssh-1.6.3/webssh/static/{a}")
        dest = os.path.join(web, os.path.basename(a))
        with open(dest + ".part", "wb") as out:
            out.write(member.read())
        os.replace(dest + ".part", dest)
PY
fi
