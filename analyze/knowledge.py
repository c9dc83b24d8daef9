"""Knowledge snippets for next-best-action hints, retrieved by embedding similarity. Pure after load.

A knowledge base is a folder of markdown articles (`analyze/knowledge/*.md` ships as an example):
the file name is the article id, the first `# ` line its title, and each paragraph a passage.
Passages are embedded once at load; a hint gets the passage nearest to what the customer said,
or the first passage of the article its rule names.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from analyze.matchers import TextEmbedder

MAX_SNIPPET_CHARS = 320
# Below this cosine similarity the nearest passage is not about the customer's words at all.
DEFAULT_MIN_SCORE = 0.3


@dataclass(frozen=True, slots=True)
class Passage:
    article_id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Snippet:
    article_id: str
    title: str
    text: str
    score: float | None  # cosine similarity when retrieved; None when named by the rule


def default_knowledge_dir() -> Path:
    return Path(str(resources.files("analyze").joinpath("knowledge")))


def read_articles(folder: str | Path) -> list[Passage]:
    """Every paragraph of every `*.md` file in `folder`, in file-name order."""
    passages: list[Passage] = []
    for path in sorted(Path(folder).glob("*.md")):
        title, paragraphs = path.stem, []
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
            if lines and lines[0].startswith("# "):
                title = lines.pop(0)[2:].strip()
            text = " ".join(
                line.lstrip("-* ").strip() if line[:2] in ("- ", "* ") else line for line in lines
            )
            if text and not text.startswith("#"):
                paragraphs.append(text)
        passages.extend(Passage(path.stem, title, p) for p in paragraphs)
    return passages


def _clip(text: str) -> str:
    if len(text) <= MAX_SNIPPET_CHARS:
        return text
    cut = text[:MAX_SNIPPET_CHARS].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + " …"


class KnowledgeBase:
    """Passages and their vectors; `retrieve` is one matrix-vector product."""

    def __init__(self, passages: list[Passage], embedder: TextEmbedder | None, *, min_score: float) -> None:
        self._passages = passages
        self._embedder = embedder
        self._min_score = min_score
        self._first = {}
        for passage in passages:
            self._first.setdefault(passage.article_id, passage)
        self._vectors = (
            embedder.embed([f"{p.title}. {p.text}" for p in passages])
            if embedder is not None and passages
            else None
        )

    @classmethod
    def load(
        cls,
        folder: str | Path | None = None,
        embedder: TextEmbedder | None = None,
        *,
        min_score: float = DEFAULT_MIN_SCORE,
    ) -> KnowledgeBase:
        """Read and embed a folder of articles (the shipped examples without one)."""
        return cls(read_articles(folder or default_knowledge_dir()), embedder, min_score=min_score)

    @property
    def article_ids(self) -> frozenset[str]:
        return frozenset(self._first)

    def article(self, article_id: str) -> Snippet | None:
        """The opening passage of a named article."""
        passage = self._first.get(article_id)
        if passage is None:
            return None
        return Snippet(passage.article_id, passage.title, _clip(passage.text), None)

    def retrieve(self, text: str, *, vector: np.ndarray | None = None) -> Snippet | None:
        """The passage nearest to `text` (or its precomputed vector), if near enough."""
        if self._vectors is None or self._embedder is None or not text.strip():
            return None
        if vector is None:
            vector = self._embedder.embed([text])[0]
        similarity = self._vectors @ vector
        best = int(np.argmax(similarity))
        if float(similarity[best]) < self._min_score:
            return None
        passage = self._passages[best]
        return Snippet(passage.article_id, passage.title, _clip(passage.text), float(similarity[best]))
