"""The import contracts of pyproject.toml hold for the project and catch what they are meant to."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("pipeline", "ingest", "transcribe", "analyze", "store", "console", "deploy", "bench", "tests")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(cwd / "pyproject.toml")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_project_keeps_its_import_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def _project_with(tmp_path: Path, modules: dict[str, str]) -> Path:
    """A tree of empty packages named like ours, with the project's own contracts and `modules`."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = [f"[tool.importlinter]\nroot_packages = {config['root_packages']!r}\n"]
    for contract in config["contracts"]:
        lines.append("[[tool.importlinter.contracts]]")
        lines += [f"{key} = {value!r}" for key, value in contract.items()]
    (tmp_path / "pyproject.toml").write_text("\n".join(lines).replace("'", '"') + "\n")
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, source in modules.items():
        (tmp_path / name).write_text(source)
    return tmp_path


@pytest.mark.parametrize(
    ("modules", "complaint"),
    [
        ({"pipeline/stage.py": "import ingest.events\n", "ingest/events.py": ""}, "pipeline is not allowed"),
        ({"analyze/replay.py": "import store.models\n", "store/models.py": ""}, "analyze is not allowed"),
        ({"store/sink.py": "import bench.report\n", "bench/report.py": ""}, "store is not allowed"),
        (
            {
                "transcribe/a.py": "from transcribe import b\n",
                "transcribe/b.py": "from transcribe import a\n",
            },
            "No cycles are allowed in transcribe",
        ),
        ({"deploy/cli.py": "import tests.speech\n", "tests/speech.py": ""}, "deploy is not allowed"),
    ],
    ids=["upward", "against-the-flow", "product-imports-bench", "cycle", "product-imports-tests"],
)
def test_a_change_that_breaks_the_floors_fails(
    tmp_path: Path, modules: dict[str, str], complaint: str
) -> None:
    result = lint_imports(_project_with(tmp_path, modules))
    assert result.returncode != 0
    assert complaint in result.stdout
