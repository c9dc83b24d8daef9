"""Fixtures of the analysis tests."""

from __future__ import annotations

import pytest

from analyze.embeddings import Embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The MiniLM embedding model shipped in a package, loaded once per module."""
    return Embedder.load()
