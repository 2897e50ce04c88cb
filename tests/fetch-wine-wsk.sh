#!/usr/bin/env bash
# Puts Wine's include/ddk/wsk.h at target/wine-include/ddk/wsk.h for
# tests/kmodel/tests/abi_conformance.rs, which checks core's hand-written WSK declarations
# against it. Wine's source is LGPL and is never committed: it comes from the distribution's
# source package (`apt-get source wine`), only this one header is kept, under target/.
#
# Debian (bookworm or later) only; needs root or sudo, for apt. Idempotent: does nothing when
# the header is already there.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/target/wine-include/ddk/wsk.h"
if [[ -s "$dest" ]]; then
    echo "fetch-wine-wsk: $dest already present"
    exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    sudo=(sudo)
fi

# apt-get source needs a deb-src entry. The system lists its archives in deb822 form
# (/etc/apt/sources.list.d/debian.sources); a one-line `deb-src` entry for the same archive
# would conflict with it on Signed-By, so add a deb822 stanza with the same URIs and key.
has_deb_src() {
    grep -Eqs '^[[:space:]]*Types:.*\bdeb-src\b' /etc/apt/sources.list.d/*.sources ||
        grep -Eqs '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list
}
if ! has_deb_src; then
    # shellcheck disable=SC1091
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    uris="http://deb.debian.org/debian"
    signed_by="/usr/share/keyrings/debian-archive-keyring.gpg"
    main_sources=/etc/apt/sources.list.d/debian.sources
    if [[ -r "$main_sources" ]]; then
        # The first stanza is the main archive (the others are -updates/-security).
        uris="$(sed -n '/^URIs:/{s/^URIs:[[:space:]]*//p;q}' "$main_sources")"
        signed_by="$(sed -n '/^Signed-By:/{s/^Signed-By:[[:space:]]*//p;q}' "$main_sources")"
    fi
    echo "fetch-wine-wsk: adding deb-src $uris $codename main"
    printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
        "$uris" "$codename" "$signed_by" |
        "${sudo[@]}" tee /etc/apt/sources.list.d/wskudp-src.sources >/dev/null
fi

"${sudo[@]}" apt-get update -qq

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source --download-only -qq wine)

orig=("$work"/wine_*.orig.tar.*)
if [[ ! -f "${orig[0]}" ]]; then
    echo "fetch-wine-wsk: no wine_*.orig.tar.* downloaded" >&2
    exit 1
fi
tar -xf "${orig[0]}" -C "$work" --wildcards --no-anchored 'include/ddk/wsk.h'
header="$(find "$work" -path '*/include/ddk/wsk.h' -print -quit)"
if [[ -z "$header" ]]; then
    echo "fetch-wine-wsk: ${orig[0]} has no include/ddk/wsk.h" >&2
    exit 1
fi
install -D -m 0644 "$header" "$dest"
echo "fetch-wine-wsk: $(basename "${orig[0]}") -> $dest"
