"""The transformers engine loads an operator's own model from a local directory (a tiny one built here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyze.sentiment import SentimentModelError, TransformersScorer, label_indices

torch = pytest.importorskip("torch", reason="torch missing: pip install torch (the models extra needs it)")
transformers = pytest.importorskip(
    "transformers", reason="transformers missing: pip install 'callscope[models]'"
)

WORDS = ["great", "thanks", "awful", "hold", "my", "account", "the", "is", "on", "for", "minutes"]


def _save_tiny_model(path: Path, id2label: dict[int, str], favoured: int) -> Path:
    """A 1-layer BERT whose classifier ignores its input and always prefers label `favoured`."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[favoured] = 4.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_three_label_model_saved_locally_scores_by_its_label_names(tmp_path: Path) -> None:
    # Label order deliberately unusual: the engine must read the names, not assume positions.
    path = _save_tiny_model(tmp_path / "m", {0: "positive", 1: "negative", 2: "neutral"}, favoured=0)
    scores = TransformersScorer(path).score("great thanks")
    assert scores.positive > 0.9 and scores.compound > 0.9
    assert scores.positive + scores.negative + scores.neutral == pytest.approx(1.0, abs=1e-5)


def test_a_two_label_model_with_generic_names_reads_as_negative_positive(tmp_path: Path) -> None:
    path = _save_tiny_model(tmp_path / "m", {0: "LABEL_0", 1: "LABEL_1"}, favoured=0)
    scores = TransformersScorer(path).score("on hold for minutes")
    assert scores.negative > 0.9 and scores.compound < -0.9 and scores.neutral == 0.0


def test_a_directory_without_a_model_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SentimentModelError, match="save_pretrained"):
        TransformersScorer(tmp_path)


def test_label_names_are_matched_loosely() -> None:
    assert label_indices({0: "NEG", 1: "NEU", 2: "POS"}) == (0, 1, 2)
    assert label_indices({0: "good", 1: "bad"}) == (1, None, 0)
