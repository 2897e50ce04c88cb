#!/usr/bin/env bash
# Cross-builds the WDM flavor of the driver on Linux with the toolchain's own rust-lld (no WDK,
# no MSVC linker), for x64 and ARM64, and puts each at target/wskudp-wdm/<arch>/wskudp.sys
# (+ .pdb, .map), <arch> as stampinf names it: amd64, arm64.
# tests/harness/tests/driver_image.rs then checks both PE images.
set -euo pipefail
cd "$(dirname "$0")/.."

for pair in amd64:x86_64-pc-windows-msvc arm64:aarch64-pc-windows-msvc; do
  arch=${pair%%:*}
  triple=${pair#*:}
  rustup target add "$triple" --toolchain 1.95.0
  linker_var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER"
  env "$linker_var=rust-lld" cargo build --locked --release -p wskudp --target "$triple" \
    --no-default-features --features wdm

  from=target/$triple/release
  out=target/wskudp-wdm/$arch
  mkdir -p "$out"
  cp "$from/wskudp.dll" "$out/wskudp.sys"
  for extra in pdb map; do
    if [ -f "$from/wskudp.$extra" ]; then cp "$from/wskudp.$extra" "$out/wskudp.$extra"; fi
  done
  if [ -f "$from/deps/wskudp.map" ]; then cp "$from/deps/wskudp.map" "$out/wskudp.map"; fi
  echo "built $out/wskudp.sys ($(wc -c < "$out/wskudp.sys") bytes)"
done
