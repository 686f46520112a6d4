#!/bin/sh
# Shell completions and man pages for packagers, generated from hactl's
# clap definition (`hactl generate`, hidden from --help), so that they
# always match `hactl --help`.
#
#   scripts/gen-completions-man.sh [HACTL] [OUT]
#
# HACTL: the hactl binary (default: target/release/hactl, built if missing);
# OUT: the staging directory (default: target/dist). Writes the files at the
# paths Debian installs them to, relative to OUT:
#   usr/share/bash-completion/completions/hactl
#   usr/share/zsh/vendor-completions/_hactl
#   usr/share/fish/vendor_completions.d/hactl.fish
#   usr/share/man/man1/hactl.1 and hactl-SUBCOMMAND.1 (gzipped)
set -eu
cd "$(dirname "$0")/.."
hactl=${1:-target/release/hactl}
out=${2:-target/dist}
if [ ! -x "$hactl" ]; then
    cargo build --release --bin hactl
fi
mkdir -p "$out/usr/share/bash-completion/completions" \
    "$out/usr/share/zsh/vendor-completions" \
    "$out/usr/share/fish/vendor_completions.d" \
    "$out/usr/share/man/man1"
"$hactl" generate completions bash >"$out/usr/share/bash-completion/completions/hactl"
"$hactl" generate completions zsh >"$out/usr/share/zsh/vendor-completions/_hactl"
"$hactl" generate completions fish >"$out/usr/share/fish/vendor_completions.d/hactl.fish"
"$hactl" generate man "$out/usr/share/man/man1"
gzip -9nf "$out"/usr/share/man/man1/hactl*.1
echo "completions and $(ls "$out/usr/share/man/man1" | wc -l) man pages in $out/usr/share"
