#!/bin/sh
# Installs the Debian packages dgring needs that are missing, and nothing
# else. Usage: scripts/deps.sh build|test|ci
# Runs as root on Debian 12 (uses sudo when not root and sudo exists).
set -eu

build_pkgs="gcc libc6-dev pkg-config meson ninja-build liburing-dev libc-ares-dev"
# iproute2: ip, ss and nstat (the tools' tests compare with the kernel's
# counters); gnuplot-nox: dgblast --plot; jq: the tests parse JSON lines.
test_pkgs="$build_pkgs libcriterion-dev iproute2 dnsmasq-base sockperf gnuplot-nox jq"
ci_pkgs="$test_pkgs clang libclang-rt-14-dev valgrind libuv1-dev"

case "${1:-build}" in
    build) want=$build_pkgs ;;
    test) want=$test_pkgs ;;
    ci) want=$ci_pkgs ;;
    *) echo "deps.sh: unknown set '$1' (build, test or ci)" >&2; exit 2 ;;
esac
# The Node module's suite (bindings/node, suite "node") needs node and its
# headers: Debian's nodejs and libnode-dev where no node is installed (a
# node installed otherwise, e.g. NodeSource's, carries its own headers).
# Without npm (Debian packages it apart) its package test is skipped.
if [ "${1:-build}" != build ] && ! command -v node >/dev/null 2>&1; then
    want="$want nodejs libnode-dev"
fi

missing=""
for p in $want; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "deps.sh: missing packages:$missing; run as root to install them" >&2
    exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
