"""Create the SageMaker model, endpoint config and endpoint for the bridge container (boto3, `aws` extra).

Only the control plane goes through boto3: the stream itself needs the HTTP/2 runtime client
(transcribe/sagemaker_transport.py). Example:

    python -m deploy.sagemaker.create_endpoint --name callscope-voxtral \\
        --image-uri 123456789012.dkr.ecr.us-east-1.amazonaws.com/callscope-sagemaker:latest \\
        --role-arn arn:aws:iam::123456789012:role/SageMakerExecution \\
        --model-data s3://my-bucket/voxtral-mini-4b-realtime/ --region us-east-1 --wait
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VOXTRAL_REALTIME = "mistralai/Voxtral-Mini-4B-Realtime-2602"
MODEL_DIR = "/opt/ml/model"  # where SageMaker mounts ModelDataSource inside the container
DEFAULT_INSTANCE_TYPE = "ml.g6.4xlarge"  # 1x L4 24 GB, the AWS Voxtral-realtime sample's choice

# vLLM flags for the container entrypoint (SM_VLLM_FOO_BAR=x -> --foo-bar x). One hour of call audio
# per utterance at 80 ms per token needs max_model_len 45000; 4 concurrent sessions fit an ml.g6.4xlarge.
DEFAULT_VLLM_ENV: Mapping[str, str] = {
    "SM_VLLM_SERVED_MODEL_NAME": VOXTRAL_REALTIME,  # else clients must send the path as the model name
    "SM_VLLM_TOKENIZER_MODE": "mistral",
    "SM_VLLM_CONFIG_FORMAT": "mistral",
    "SM_VLLM_LOAD_FORMAT": "mistral",
    "SM_VLLM_MAX_MODEL_LEN": "45000",
    "SM_VLLM_MAX_NUM_SEQS": "4",
    "SM_VLLM_GPU_MEMORY_UTILIZATION": "0.9",
    "SM_VLLM_COMPILATION_CONFIG": '{"cudagraph_mode":"PIECEWISE"}',
}


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """Everything the three create calls need; names of the model and config derive from `name`."""

    name: str
    image_uri: str
    role_arn: str
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    model_data_s3_uri: str | None = None  # uncompressed S3 prefix with the weights, mounted at MODEL_DIR
    environment: Mapping[str, str] = field(default_factory=dict)  # overrides DEFAULT_VLLM_ENV
    variant_name: str = "AllTraffic"
    model_data_download_timeout_s: int = 700
    startup_health_check_timeout_s: int = 900

    @property
    def model_name(self) -> str:
        return f"{self.name}-model"

    @property
    def endpoint_config_name(self) -> str:
        return f"{self.name}-config"


class EndpointFailed(RuntimeError):
    """The endpoint did not reach InService; the message carries SageMaker's FailureReason."""


def container_environment(spec: EndpointSpec) -> dict[str, str]:
    model = MODEL_DIR if spec.model_data_s3_uri else VOXTRAL_REALTIME  # no S3 data: vLLM fetches the hub id
    return {"SM_VLLM_MODEL": model, **DEFAULT_VLLM_ENV, **spec.environment}


def model_request(spec: EndpointSpec) -> dict[str, Any]:
    container: dict[str, Any] = {"Image": spec.image_uri, "Environment": container_environment(spec)}
    if spec.model_data_s3_uri:
        container["ModelDataSource"] = {
            "S3DataSource": {
                "S3Uri": spec.model_data_s3_uri,
                "S3DataType": "S3Prefix",
                "CompressionType": "None",
            }
        }
    return {"ModelName": spec.model_name, "ExecutionRoleArn": spec.role_arn, "PrimaryContainer": container}


def endpoint_config_request(spec: EndpointSpec) -> dict[str, Any]:
    variant = {
        "VariantName": spec.variant_name,
        "ModelName": spec.model_name,
        "InstanceType": spec.instance_type,
        "InitialInstanceCount": spec.instance_count,
        "ModelDataDownloadTimeoutInSeconds": spec.model_data_download_timeout_s,
        "ContainerStartupHealthCheckTimeoutInSeconds": spec.startup_health_check_timeout_s,
    }
    return {"EndpointConfigName": spec.endpoint_config_name, "ProductionVariants": [variant]}


def endpoint_request(spec: EndpointSpec) -> dict[str, Any]:
    return {"EndpointName": spec.name, "EndpointConfigName": spec.endpoint_config_name}


def create_endpoint(
    client: Any, spec: EndpointSpec, *, wait: bool = False, poll_s: int = 30, max_polls: int = 80
) -> str:
    """Create model, endpoint config and endpoint with a boto3 `sagemaker` client; returns the endpoint ARN.

    With `wait`, polls DescribeEndpoint until InService (at most `max_polls` times, `poll_s` apart).
    """
    from botocore.exceptions import WaiterError

    client.create_model(**model_request(spec))
    client.create_endpoint_config(**endpoint_config_request(spec))
    arn: str = client.create_endpoint(**endpoint_request(spec))["EndpointArn"]
    if wait:
        try:
            client.get_waiter("endpoint_in_service").wait(
                EndpointName=spec.name, WaiterConfig={"Delay": poll_s, "MaxAttempts": max_polls}
            )
        except WaiterError as exc:
            reason = exc.last_response.get("FailureReason") or exc.last_response.get("EndpointStatus")
            raise EndpointFailed(f"endpoint {spec.name} did not reach InService: {reason}") from exc
    return arn


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def parse_args(argv: Sequence[str] | None) -> tuple[EndpointSpec, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.sagemaker.create_endpoint", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--name", required=True, help="endpoint name; model and config names derive from it")
    parser.add_argument("--image-uri", required=True, help="ECR URI of the image built from Dockerfile")
    parser.add_argument("--role-arn", required=True, help="SageMaker execution role")
    parser.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE)
    parser.add_argument("--instance-count", type=int, default=1)
    parser.add_argument("--model-data", help="S3 prefix (uncompressed) with the model weights")
    parser.add_argument("--env", type=_key_value, action="append", default=[], help="container KEY=VALUE")
    parser.add_argument("--region", help="AWS region (default: the boto3 configuration)")
    parser.add_argument("--wait", action="store_true", help="wait until the endpoint is InService")
    args = parser.parse_args(argv)
    if args.instance_count < 1:
        parser.error("--instance-count must be at least 1")
    spec = EndpointSpec(
        name=args.name,
        image_uri=args.image_uri,
        role_arn=args.role_arn,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        model_data_s3_uri=args.model_data,
        environment=dict(args.env),
    )
    return spec, args


def main(argv: Sequence[str] | None = None) -> int:
    spec, args = parse_args(argv)
    try:
        import boto3
    except ImportError:
        print("boto3 is missing: pip install 'callscope[aws]'", file=sys.stderr)
        return 2
    client = boto3.client("sagemaker", region_name=args.region)
    try:
        arn = create_endpoint(client, spec, wait=args.wait)
    except EndpointFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    print(arn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
