#!/usr/bin/env bash
# Every test wskudp can run on a Linux machine (work in progress: grows with the project).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add clippy rustfmt rust-src --toolchain 1.95.0
rustup target add x86_64-pc-windows-msvc --toolchain 1.95.0
cargo fmt --all -- --check
cargo clippy --locked -p wskudp-abi -p wskudp-core --all-targets -- -D warnings
cargo test --locked -p wskudp-abi -p wskudp-core
