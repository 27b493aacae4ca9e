#!/usr/bin/env bash
# Installs what the build and the test suite need beyond Rust, idempotently:
#   - the pinned Rust toolchain name (see below) and its wasm32-wasip1/wasip2 targets;
#   - .venv/ with moto's S3-compatible server (the real S3 protocol on loopback for the
#     object-URL tests), boto3 + the AWS CLI v1 (Lambda Invoke API compatibility), and
#     schemathesis (API fuzzing against openapi.json, scripts/api-fuzz).
#   - as root, Debian's nftables (NAT for instances with network egress), strace (the
#     agent's seccomp test traces the example functions' syscalls), nats-server (NATS
#     triggers' tests start their own, with JetStream, on loopback ports of their own) and
#     prometheus (for promtool, which checks /metrics), clang, lld and wasi-libc (a C
#     function built for wasm32-wasi), and chromium (the console's browser tests;
#     scripts/console-test installs their npm packages).
#     Skipped with --toolchain-only.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml pins the machine's stable release by number. Where rustup knows that
# release only as "stable", link it under its number (no download: this network reaches
# no toolchain server).
pinned=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
host=$(rustc +stable -vV 2>/dev/null | sed -n 's/^host: //p' || true)
if [ -n "$host" ] && [ ! -e "$rustup_home/toolchains/$pinned-$host" ] \
    && rustc +stable --version | grep -q "^rustc $pinned "; then
    ln -s "$rustup_home/toolchains/stable-$host" "$rustup_home/toolchains/$pinned-$host"
    echo "test-deps: linked toolchain $pinned to the installed stable" >&2
fi

# The WebAssembly targets: examples/wasm-* and hearth-wasm's tests build guests for them.
for target in wasm32-wasip1 wasm32-wasip2; do
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        echo "test-deps: adding the Rust target $target (WebAssembly examples and tests)" >&2
        rustup target add "$target" >&2
    fi
done

[ "${1:-}" = "--toolchain-only" ] && exit 0

# nftables: network egress (NAT for instances with `network: egress`) and its test, as root.
if [ "$(id -u)" = 0 ] && ! command -v nft >/dev/null && [ ! -x /usr/sbin/nft ]; then
    echo "test-deps: installing nftables (Debian package; egress NAT)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends nftables >/dev/null
fi
# strace: the agent's seccomp test runs the example functions under it, as root.
if [ "$(id -u)" = 0 ] && ! command -v strace >/dev/null && [ ! -x /usr/bin/strace ]; then
    echo "test-deps: installing strace (Debian package; the seccomp allow-list test)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends strace >/dev/null
fi

# nats-server: the NATS triggers' tests start it themselves (hearth-events' test_support).
if [ "$(id -u)" = 0 ] && ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
    echo "test-deps: installing nats-server (Debian package; NATS trigger tests)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends nats-server >/dev/null
fi
# promtool (Debian's prometheus package): the metrics tests check /metrics with it.
if [ "$(id -u)" = 0 ] && ! command -v promtool >/dev/null && [ ! -x /usr/bin/promtool ]; then
    echo "test-deps: installing prometheus (Debian package; promtool checks /metrics)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# clang, lld and wasi-libc: a C function built for wasm32-wasi (hearth-wasm's tests).
if [ "$(id -u)" = 0 ] && ! dpkg -s wasi-libc libclang-rt-14-dev-wasm32 lld clang >/dev/null 2>&1; then
    echo "test-deps: installing clang, lld and wasi-libc (Debian packages; a C WebAssembly function)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null
fi
# chromium: the console's browser tests (scripts/console-test) drive it headless with Playwright.
if [ "$(id -u)" = 0 ] && [ ! -x /usr/bin/chromium ]; then
    echo "test-deps: installing chromium (Debian package; the console's browser tests)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
# Debian's package enables and starts a system service on :4222; the tests need none.
if [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null && systemctl is-active --quiet nats-server 2>/dev/null; then
    systemctl disable --now nats-server >/dev/null 2>&1 || true
fi

MOTO_VERSION=5.2.5
# Debian's interpreter, not a pyenv shim (shims are slow and depend on the user's set-up).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

AWSCLI_VERSION=1.46.3
if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
    || ! .venv/bin/aws --version 2>&1 | grep -q "aws-cli/$AWSCLI_VERSION "; then
    echo "test-deps: installing moto[server]==$MOTO_VERSION and awscli==$AWSCLI_VERSION into .venv (about 30 s, once)" >&2
    if ! "$PY" -m venv .venv 2>/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        "$PY" -m venv .venv
    fi
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION"
fi
# The official Python runtime interface client, packaged the way a user would ship it
# inside a `provided` function (compatibility test).
RIC_VERSION=4.2.2
if [ ! -f ".venv/awslambdaric-pkg/awslambdaric-$RIC_VERSION.dist-info/METADATA" ]; then
    echo "test-deps: installing awslambdaric==$RIC_VERSION into .venv/awslambdaric-pkg" >&2
    rm -rf .venv/awslambdaric-pkg
    .venv/bin/pip install --quiet --disable-pip-version-check --target .venv/awslambdaric-pkg "awslambdaric==$RIC_VERSION"
fi
# API fuzzing (scripts/api-fuzz): schemathesis generates requests from openapi.json.
SCHEMATHESIS_VERSION=4.32.5
if ! .venv/bin/schemathesis --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
    echo "test-deps: installing schemathesis==$SCHEMATHESIS_VERSION into .venv (about 20 s, once)" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
echo "test-deps: ready (moto $MOTO_VERSION, awslambdaric $RIC_VERSION, schemathesis $SCHEMATHESIS_VERSION)" >&2
