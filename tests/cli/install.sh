#!/usr/bin/env bash
# Installs the newest Claude Code CLI into tests/cli/node_modules for the end-to-end test
# (tests/test_claude_code_cli.py) and prints the path of the `claude` executable on the last
# line of stdout. Idempotent: safe to run again (CI runs it before pytest).
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
#   CLAUDE_CODE_VERSION   npm version/tag to install (default: latest)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

version="${CLAUDE_CODE_VERSION:-latest}"
pkg_dir="$here/node_modules/@anthropic-ai/claude-code"
exe="$here/node_modules/.bin/claude"

log() { echo "install.sh: $*" >&2; }

works() {
    [ -x "$exe" ] && "$exe" --version >/dev/null 2>&1
}

if ! command -v npm >/dev/null 2>&1; then
    log "npm not found; install Node.js (apt-get install -y nodejs npm)"
    exit 1
fi

# package.json pins nothing ("latest"); no lock file is written, so each run takes the newest
# release. npm's own output goes to stderr so stdout carries only the path.
if ! npm install --no-audit --no-fund --no-package-lock --loglevel=error \
        "@anthropic-ai/claude-code@${version}" --save=false 1>&2; then
    if works; then
        log "npm install failed; keeping the already installed CLI"
    else
        log "npm install failed and no working CLI is installed"
        exit 1
    fi
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
