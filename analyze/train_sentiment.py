"""Train the embedding engine's sentiment head on the project's own labelled utterances.

    python -m analyze.train_sentiment [--data analyze/data/sentiment_train.jsonl] [--out ...npz]

Multinomial logistic regression with L2, in numpy, on MiniLM sentence vectors. Prints k-fold
cross-validated accuracy before fitting on everything. Deterministic: same data, same weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from analyze.sentiment import LABELS, LinearHead, softmax

DATA = Path(__file__).parent / "data" / "sentiment_train.jsonl"
OUT = Path(__file__).parent / "data" / "sentiment_head.npz"


def read_examples(path: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(LABELS.index(row["label"]))
    return texts, np.asarray(labels, dtype=np.int64)


def fit(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, steps: int = 3000, lr: float = 2.0) -> LinearHead:
    """Full-batch gradient descent on the mean cross-entropy plus an L2 penalty on the weights."""
    n, d = x.shape
    w = np.zeros((d, len(LABELS)), dtype=np.float64)
    b = np.zeros(len(LABELS), dtype=np.float64)
    onehot = np.eye(len(LABELS))[y]
    for _ in range(steps):
        p = softmax(x @ w + b)
        grad = (p - onehot) / n
        w -= lr * (x.T @ grad + l2 * w)
        b -= lr * grad.sum(axis=0)
    return LinearHead(weights=w.astype(np.float32), bias=b.astype(np.float32))


def cross_validate(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 7) -> float:
    order = np.random.default_rng(seed).permutation(len(y))
    correct = 0
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        head = fit(x[train], y[train])
        correct += int((head.probabilities(x[test]).argmax(axis=1) == y[test]).sum())
    return correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from analyze.embeddings import Embedder

    texts, y = read_examples(args.data)
    x = Embedder.load().embed(texts).astype(np.float64)
    print(f"{len(texts)} examples; {cross_validate(x, y):.3f} accuracy in 5-fold cross-validation")
    head = fit(x, y)
    head.save(args.out)
    print(f"training accuracy {(head.probabilities(x).argmax(axis=1) == y).mean():.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
