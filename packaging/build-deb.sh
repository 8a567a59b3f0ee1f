#!/usr/bin/env bash
# Builds target/debian/portwarden_<version>_<arch>.deb: the release binary,
# the manual pages and shell completions it generates, the systemd units.
# Needs cargo-deb (`cargo install cargo-deb`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
bin=target/release/portwarden
rm -rf target/assets
mkdir -p target/assets/completions
"$bin" man --out target/assets/man
"$bin" completions bash > target/assets/completions/portwarden.bash
"$bin" completions zsh > target/assets/completions/_portwarden
"$bin" completions fish > target/assets/completions/portwarden.fish
cargo deb --no-build --locked "$@"
