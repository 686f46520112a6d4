#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need, then runs
# the quality gates and every test suite. Run as root on Debian 12.
#   HACTL_LONG=1   long mode (more simulation seeds, VM tests) when suites have one
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

echo "== cargo tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast
fi

echo "== real systemd: the shipped unit in a systemd-nspawn container"
vm-tests/nspawn/test-unit.sh

echo "== real systemd: the web cluster (VIP + shared disk + nginx) on three systemd-nspawn nodes"
vm-tests/nspawn/web-cluster.sh

echo "== all tests passed in $(( $(date +%s) - start )) s"
