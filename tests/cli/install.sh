#!/usr/bin/env bash
# Installs the Claude Code CLI at the version pinned in tests/cli/package.json into tests/cli/node_modules for
# the end-to-end tests (tests/test_claude_code_cli*.py) and prints the path of the `claude` executable on the
# last line of stdout. Idempotent: when that version is installed and runs, npm is not called at all.
# The pin is bumped on purpose (a new CLI release cannot turn CI red on its own); CLAUDE_CODE_VERSION=latest
# tries the newest release (README, "Run the tests").
#
# How the CLI is launched (2.1.x): the npm package `@anthropic-ai/claude-code` declares
# bin `claude` -> bin/claude.exe. That file is a small placeholder until its postinstall
# (`node install.cjs`) hard-links (or copies) the native, self-contained binary (a Bun-compiled
# ELF of ~400 MB, no Node.js needed at run time) from the platform package
# `@anthropic-ai/claude-code-<os>-<arch>[-musl]` (an optionalDependency) over it.
# node_modules/.bin/claude is a symlink to bin/claude.exe. If npm did not run the postinstall
# (--ignore-scripts, npm's allow-scripts policy), this script runs install.cjs itself.
# `node cli-wrapper.cjs` is the package's slower fallback launcher (spawns the same binary).
#
# Environment:
#   CLAUDE_CODE_VERSION   npm version or tag to install instead of the pin (e.g. latest)
#
# Exit status 3: Node.js/npm are missing (system packages; stdout's last line says what to install, and
# scripts/test decides whether the CLI tests skip or the run fails).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

pinned="$(sed -n 's/.*"@anthropic-ai\/claude-code": *"\([^"]*\)".*/\1/p' package.json)"
version="${CLAUDE_CODE_VERSION:-$pinned}"
pkg_dir="$here/node_modules/@anthropic-ai/claude-code"
exe="$here/node_modules/.bin/claude"

log() { echo "install.sh: $*" >&2; }

works() {
    [ -x "$exe" ] && "$exe" --version >/dev/null 2>&1
}

installed_version() {
    [ -x "$exe" ] && "$exe" --version 2>/dev/null | awk '{print $1; exit}'
}

if [ -z "$version" ]; then
    log "no version for @anthropic-ai/claude-code in $here/package.json"
    exit 1
fi

# An exact version already installed and running: nothing to fetch.
if [ "$(installed_version || true)" = "$version" ]; then
    log "Claude Code $version is installed"
    echo "$exe"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    # One line on stdout, where the path goes on success: scripts/test shows it as the reason the CLI tests skip.
    echo "Node.js and npm are not installed, and installing the Claude Code CLI needs them: install them" \
        "(Debian/Ubuntu: sudo apt-get install -y nodejs npm; macOS: brew install node), then run scripts/test again"
    exit 3
fi

# No lock file is written: the version comes from package.json (or CLAUDE_CODE_VERSION). npm's own output goes to
# stderr so stdout carries only the path.
if ! npm install --no-audit --no-fund --no-package-lock --loglevel=error \
        "@anthropic-ai/claude-code@${version}" --save=false 1>&2; then
    # Never carry on with another version than the one asked for: the tests would pin the wrong release.
    log "npm install of @anthropic-ai/claude-code@${version} failed"
    exit 1
fi

if [ ! -f "$pkg_dir/package.json" ]; then
    log "missing $pkg_dir after npm install"
    exit 1
fi

# The placeholder is tiny; the native binary is hundreds of MB. Run the postinstall if npm
# skipped it.
size=$(stat -c %s "$pkg_dir/bin/claude.exe" 2>/dev/null || echo 0)
if [ "$size" -lt 1048576 ] || ! works; then
    log "native binary not in place (bin/claude.exe is $size bytes); running install.cjs"
    (cd "$pkg_dir" && node install.cjs) 1>&2
fi

if [ ! -e "$exe" ]; then
    # npm normally creates the .bin link; make it if missing.
    mkdir -p "$here/node_modules/.bin"
    ln -sf ../@anthropic-ai/claude-code/bin/claude.exe "$exe"
fi

if ! works; then
    log "$exe does not run; see 'node $pkg_dir/cli-wrapper.cjs --version'"
    exit 1
fi

log "installed $("$exe" --version 2>/dev/null)"
echo "$exe"
