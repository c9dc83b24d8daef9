#!/usr/bin/env bash
# Container entrypoint. SageMaker starts the container as `docker run IMAGE serve` (the argument is
# ignored): vLLM on loopback port CALLSCOPE_VLLM_PORT (8081) with flags from SM_VLLM_* variables
# (SM_VLLM_MAX_MODEL_LEN=45000 -> --max-model-len 45000; "true" -> a bare flag, "false" -> omitted),
# and the bridge on CALLSCOPE_BRIDGE_PORT (8080) right away: /ping answers 503 until vLLM's /health
# is 200, which SageMaker waits for (ContainerStartupHealthCheckTimeoutInSeconds).
# The first of the two processes to exit stops the other; the container exits with its status.
set -euo pipefail

VLLM_PORT=${CALLSCOPE_VLLM_PORT:-8081}
export CALLSCOPE_BRIDGE_PORT=${CALLSCOPE_BRIDGE_PORT:-8080}
export CALLSCOPE_BRIDGE_HOST=${CALLSCOPE_BRIDGE_HOST:-0.0.0.0}
export CALLSCOPE_BRIDGE_UPSTREAM=http://127.0.0.1:$VLLM_PORT
PYTHON=${CALLSCOPE_PYTHON:-python3}

vllm_args=()
while IFS= read -r name; do
    value=${!name}
    flag=${name#SM_VLLM_}
    flag=--${flag,,}
    flag=${flag//_/-}
    case ${value,,} in
        true) vllm_args+=("$flag") ;;
        false) ;;
        *) vllm_args+=("$flag" "$value") ;;
    esac
done < <(compgen -e | grep '^SM_VLLM_' | sort)

echo "starting vLLM on 127.0.0.1:$VLLM_PORT: ${vllm_args[*]}" >&2
"$PYTHON" -m vllm.entrypoints.openai.api_server --host 127.0.0.1 --port "$VLLM_PORT" "${vllm_args[@]}" &
vllm_pid=$!
"$PYTHON" -m deploy.sagemaker.bridge &
bridge_pid=$!

stop() { kill -TERM "$vllm_pid" "$bridge_pid" 2>/dev/null || true; }
trap stop TERM INT
status=0
wait -n "$vllm_pid" "$bridge_pid" || status=$?
stop
wait || true
exit "$status"
