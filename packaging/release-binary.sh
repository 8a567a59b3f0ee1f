#!/bin/sh
# Builds the release binary the image and the Debian package ship, and
# prints its path and the git revision it names (`PATH REV`). One build for both (the same PORTWARDEN_VERSION, so
# cargo builds once): `portwarden --version` prints `<version> (git <rev>)`.
#
#   packaging/release-binary.sh [--glibc]
#
# A static musl build when that target is installed (the image prefers it),
# unless --glibc; else the glibc build.
set -eu
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$rev" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  rev="$rev-dirty"
fi
target_args=""
bin=target/release/portwarden
if [ "${1:-}" != --glibc ] && rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  target_args="--target x86_64-unknown-linux-musl"
  bin=target/x86_64-unknown-linux-musl/release/portwarden
fi
# shellcheck disable=SC2086
PORTWARDEN_VERSION="$version (git $rev)" cargo build --release --locked --bin portwarden $target_args >&2
echo "$bin $rev"
