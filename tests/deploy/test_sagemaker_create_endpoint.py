"""The SageMaker endpoint script sends the exact requests botocore's service model accepts.

botocore's Stubber sits on a real boto3 `sagemaker` client: every request is validated against the
service model before it is compared with the expected parameters, and nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

boto3 = pytest.importorskip("boto3", reason="boto3 (the aws/test extra) is not installed")
from botocore.stub import Stubber  # noqa: E402

from deploy.sagemaker.create_endpoint import (  # noqa: E402
    DEFAULT_VLLM_ENV,
    EndpointFailed,
    EndpointSpec,
    create_endpoint,
    parse_args,
)

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/callscope-sagemaker:1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
ARN = "arn:aws:sagemaker:us-east-1:123456789012"
ENDPOINT_ARN = f"{ARN}:endpoint/callscope-voxtral"


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, Stubber]]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session(region_name="us-east-1").client("sagemaker")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _spec(**overrides: object) -> EndpointSpec:
    fields: dict[str, object] = {
        "name": "callscope-voxtral",
        "image_uri": IMAGE,
        "role_arn": ROLE,
        "model_data_s3_uri": "s3://models/voxtral-mini-4b-realtime/",
    }
    return EndpointSpec(**(fields | overrides))  # type: ignore[arg-type]


def _expect_creates(stubber: Stubber, spec: EndpointSpec, environment: dict[str, str]) -> None:
    container: dict[str, object] = {"Image": IMAGE, "Environment": environment}
    if spec.model_data_s3_uri:
        container["ModelDataSource"] = {
            "S3DataSource": {
                "S3Uri": spec.model_data_s3_uri,
                "S3DataType": "S3Prefix",
                "CompressionType": "None",
            }
        }
    stubber.add_response(
        "create_model",
        {"ModelArn": f"{ARN}:model/callscope-voxtral-model"},
        {"ModelName": "callscope-voxtral-model", "ExecutionRoleArn": ROLE, "PrimaryContainer": container},
    )
    stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"{ARN}:endpoint-config/callscope-voxtral-config"},
        {
            "EndpointConfigName": "callscope-voxtral-config",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "callscope-voxtral-model",
                    "InstanceType": spec.instance_type,
                    "InitialInstanceCount": spec.instance_count,
                    "ModelDataDownloadTimeoutInSeconds": 700,
                    "ContainerStartupHealthCheckTimeoutInSeconds": 900,
                }
            ],
        },
    )
    stubber.add_response(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {"EndpointName": "callscope-voxtral", "EndpointConfigName": "callscope-voxtral-config"},
    )


def _describe(status: str, **extra: str) -> dict[str, object]:
    return {
        "EndpointName": "callscope-voxtral",
        "EndpointArn": ENDPOINT_ARN,
        "EndpointConfigName": "callscope-voxtral-config",
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
        **extra,
    }


def test_model_with_s3_weights_is_mounted_at_opt_ml_model_and_served_under_the_hub_name(sagemaker) -> None:
    client, stubber = sagemaker
    spec = _spec(environment={"SM_VLLM_MAX_NUM_SEQS": "8"})
    environment = {"SM_VLLM_MODEL": "/opt/ml/model", **DEFAULT_VLLM_ENV, "SM_VLLM_MAX_NUM_SEQS": "8"}
    _expect_creates(stubber, spec, environment)

    assert create_endpoint(client, spec) == ENDPOINT_ARN
    assert environment["SM_VLLM_SERVED_MODEL_NAME"] == "mistralai/Voxtral-Mini-4B-Realtime-2602"


def test_model_without_s3_weights_lets_vllm_load_the_hub_model(sagemaker) -> None:
    client, stubber = sagemaker
    spec = _spec(model_data_s3_uri=None, instance_type="ml.g6e.xlarge", instance_count=2)
    _expect_creates(
        stubber, spec, {"SM_VLLM_MODEL": "mistralai/Voxtral-Mini-4B-Realtime-2602", **DEFAULT_VLLM_ENV}
    )

    assert create_endpoint(client, spec) == ENDPOINT_ARN


def test_wait_polls_describe_endpoint_until_in_service(sagemaker) -> None:
    client, stubber = sagemaker
    spec = _spec()
    _expect_creates(stubber, spec, {"SM_VLLM_MODEL": "/opt/ml/model", **DEFAULT_VLLM_ENV})
    stubber.add_response("describe_endpoint", _describe("Creating"), {"EndpointName": "callscope-voxtral"})
    stubber.add_response("describe_endpoint", _describe("InService"), {"EndpointName": "callscope-voxtral"})

    assert create_endpoint(client, spec, wait=True, poll_s=0) == ENDPOINT_ARN


def test_failed_endpoint_reports_sagemakers_failure_reason(sagemaker) -> None:
    client, stubber = sagemaker
    spec = _spec()
    _expect_creates(stubber, spec, {"SM_VLLM_MODEL": "/opt/ml/model", **DEFAULT_VLLM_ENV})
    stubber.add_response(
        "describe_endpoint",
        _describe("Failed", FailureReason="The primary container did not pass the ping health check."),
        {"EndpointName": "callscope-voxtral"},
    )

    with pytest.raises(EndpointFailed, match="did not pass the ping health check"):
        create_endpoint(client, spec, wait=True, poll_s=0)


def test_command_line_builds_the_spec_with_env_overrides() -> None:
    spec, args = parse_args(
        [
            "--name=ep",
            f"--image-uri={IMAGE}",
            f"--role-arn={ROLE}",
            "--model-data=s3://models/v/",
            "--env",
            "SM_VLLM_MAX_MODEL_LEN=2048",
            "--env",
            "CALLSCOPE_BRIDGE_UPSTREAM_API_KEY=k=v",
            "--wait",
        ]
    )

    assert spec.model_name == "ep-model" and spec.endpoint_config_name == "ep-config"
    assert spec.environment == {"SM_VLLM_MAX_MODEL_LEN": "2048", "CALLSCOPE_BRIDGE_UPSTREAM_API_KEY": "k=v"}
    assert spec.instance_type == "ml.g6.4xlarge" and args.wait


def test_command_line_rejects_an_env_entry_without_equals_sign() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--name=ep", f"--image-uri={IMAGE}", f"--role-arn={ROLE}", "--env", "NOEQUALS"])
