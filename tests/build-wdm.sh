#!/usr/bin/env bash
# Cross-builds the WDM flavor of the driver on Linux with the toolchain's own rust-lld (no WDK,
# no MSVC linker) and puts it at target/wskudp-wdm/wskudp.sys (+ .pdb, .map).
# tests/harness/tests/driver_image.rs then checks the PE image.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add x86_64-pc-windows-msvc --toolchain 1.95.0
export CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER=rust-lld
cargo build --locked --release -p wskudp --target x86_64-pc-windows-msvc \
  --no-default-features --features wdm

from=target/x86_64-pc-windows-msvc/release
out=target/wskudp-wdm
mkdir -p "$out"
cp "$from/wskudp.dll" "$out/wskudp.sys"
for extra in pdb map; do
  if [ -f "$from/wskudp.$extra" ]; then cp "$from/wskudp.$extra" "$out/wskudp.$extra"; fi
done
if [ -f "$from/deps/wskudp.map" ]; then cp "$from/deps/wskudp.map" "$out/wskudp.map"; fi
echo "built $out/wskudp.sys ($(wc -c < "$out/wskudp.sys") bytes)"
