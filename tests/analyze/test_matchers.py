"""Exact, fuzzy and semantic matching: what each recognises, what it must leave alone.

The fuzzy and semantic figures come from the tuning sets in tests/data (ASR-garbled phrases,
paraphrases, ordinary call talk) against the shipped example rules.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from analyze.embeddings import Embedder
from analyze.matchers import ExactMatcher, FuzzyMatcher, SemanticMatcher
from analyze.rules import RuleMatcher, load_rules, normalize_text

DATA = Path(__file__).parents[1] / "data"  # tests/data, shared with bench/rules.py


class BagOfWordsEmbedder:
    """Fake embedder: one dimension per known word, so similarity is word overlap."""

    def __init__(self, vocabulary: list[str]) -> None:
        self._index = {w: i for i, w in enumerate(vocabulary)}
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), len(self._index)), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in normalize_text(text).split():
                if word in self._index:
                    out[row, self._index[word]] = 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def _targets(hits) -> list[tuple[int, str]]:
    return [(h.target, h.phrase) for h in hits]


# --- exact ---------------------------------------------------------------------------------------


def test_exact_matcher_finds_every_phrase_as_whole_words() -> None:
    matcher = ExactMatcher([(0, "cancel my account"), (1, "refund"), (2, "my account")])
    hits = matcher.match(normalize_text("Please CANCEL my account, and a refund!"))
    assert sorted(_targets(hits)) == [(0, "cancel my account"), (1, "refund"), (2, "my account")]
    assert matcher.match(normalize_text("refunds for my accountant")) == []


def test_exact_matcher_reports_every_owner_of_a_shared_phrase() -> None:
    matcher = ExactMatcher([(0, "speak to a manager"), (5, "Speak to a manager!")])
    assert sorted(_targets(matcher.match("speak to a manager"))) == [
        (0, "speak to a manager"),
        (5, "Speak to a manager!"),
    ]


def test_exact_matcher_without_phrases_matches_nothing() -> None:
    assert ExactMatcher([]).match("anything") == []


# --- fuzzy ---------------------------------------------------------------------------------------


def test_fuzzy_matcher_survives_asr_errors() -> None:
    matcher = FuzzyMatcher([(0, "cancel my account", 85), (1, "speak to a manager", 85)])
    assert _targets(matcher.match("i want to cancel my acount")) == [(0, "cancel my account")]
    assert _targets(matcher.match("can i speak to the manger")) == [(1, "speak to a manager")]
    # A word split in two by the recogniser is a window one word longer than the phrase.
    assert _targets(matcher.match("i want to cancel my a count")) == [(0, "cancel my account")]
    assert matcher.match("i want to pay my bill") == []


def test_fuzzy_matcher_keeps_only_the_best_phrase_for_one_stretch_of_words() -> None:
    matcher = FuzzyMatcher([(0, "cancel my contract", 80), (1, "cancel my account", 80)])
    hits = matcher.match("please cancel my acount")
    assert [(h.target, h.phrase) for h in hits] == [(1, "cancel my account")]
    assert hits[0].how == "fuzzy" and 85 <= hits[0].score < 100


def test_fuzzy_matcher_leaves_short_phrases_exact_only() -> None:
    matcher = FuzzyMatcher([(0, "sue you", 60), (1, "refund", 60)])
    assert matcher.match("see you") == [] and matcher.match("refunds") == []


def test_fuzzy_matcher_finds_phrases_in_separate_stretches() -> None:
    matcher = FuzzyMatcher([(0, "cancel my account", 85), (1, "speak to a manager", 85)])
    hits = matcher.match("cancel my acount or let me speak to a manger")
    assert sorted(h.target for h in hits) == [0, 1]


def _rule_and_step_ids(matcher: RuleMatcher, text: str, leg: str) -> set[str]:
    found = matcher.match_all(text, leg, semantic=False)  # type: ignore[arg-type]
    return {m.rule.id for m in found.rules} | {s.item.id for s in found.compliance}


def test_default_fuzzy_cutoff_recovers_garbled_phrases_without_firing_on_clean_talk(capsys) -> None:
    cases = yaml.safe_load((DATA / "fuzzy_phrases.yaml").read_text())
    matcher = RuleMatcher(load_rules())
    recalled = [want in _rule_and_step_ids(matcher, text, leg) for leg, text, want in cases["garbled"]]
    wrong = [text for leg, text in cases["clean"] if _rule_and_step_ids(matcher, text, leg)]
    recall = sum(recalled) / len(recalled)
    with capsys.disabled():
        print(
            f"\nfuzzy cutoff {matcher.rule_set.fuzzy_cutoff:g}: recall {recall:.1%} on"
            f" {len(recalled)} garbled phrases, {len(wrong)} of {len(cases['clean'])} clean sentences fired"
        )
    assert recall >= 0.95
    # "i spoke to a manager yesterday" is one letter from "speak to a manager": a known limit.
    assert len(wrong) <= 1, wrong


def test_exact_matching_alone_misses_the_garbled_phrases() -> None:
    cases = yaml.safe_load((DATA / "fuzzy_phrases.yaml").read_text())
    rules = load_rules()
    exact_only = RuleMatcher(
        replace(
            rules,
            rules=tuple(replace(r, fuzzy=False) for r in rules.rules),
            compliance=tuple(replace(c, trigger=replace(c.trigger, fuzzy=False)) for c in rules.compliance),
        )
    )
    recalled = [want in _rule_and_step_ids(exact_only, text, leg) for leg, text, want in cases["garbled"]]
    assert sum(recalled) / len(recalled) < 0.5


# --- semantic ------------------------------------------------------------------------------------


def test_semantic_matcher_picks_the_nearest_intent_above_its_threshold() -> None:
    fake = BagOfWordsEmbedder(["cancel", "account", "manager", "speak", "weather", "nice"])
    matcher = SemanticMatcher(fake, [(0, "cancel account", 0.5), (1, "speak manager", 0.5)])
    (hit,), vector = matcher.match("please cancel the account")
    assert (hit.target, hit.phrase, hit.how) == (0, "cancel account", "semantic")
    assert vector is not None
    assert matcher.match("the weather is nice")[0] == []  # off-topic: rejected


def test_semantic_matcher_respects_the_allowed_rows_and_background() -> None:
    fake = BagOfWordsEmbedder(["cancel", "account", "bill", "paid"])
    matcher = SemanticMatcher(fake, [(0, "cancel account", 0.3), (1, "bill", 0.3)], background=["paid bill"])
    assert matcher.match("cancel account", matcher.rows_for([1]))[0] == []  # other leg's intent only
    assert matcher.match("i paid the bill")[0] == []  # nearer to ordinary talk than to the intent
    assert [h.target for h in matcher.match("the bill")[0]] == [1]


def test_semantic_matcher_reuses_a_given_vector() -> None:
    fake = BagOfWordsEmbedder(["cancel", "account"])
    matcher = SemanticMatcher(fake, [(0, "cancel account", 0.5)])
    calls = fake.calls
    vector = fake.embed(["cancel account"])[0]
    assert [h.target for h in matcher.match("cancel account", vector=vector)[0]] == [0]
    assert fake.calls == calls + 1  # only the call made here


def test_real_embeddings_fire_intents_on_paraphrases_and_reject_off_topic_talk(embedder, capsys) -> None:
    cases = yaml.safe_load((DATA / "intents.yaml").read_text())
    matcher = RuleMatcher(load_rules(), embedder=embedder)
    hits = [want in {m.rule.id for m in matcher.match(t, leg)} for leg, t, want in cases["in_scope"]]
    off = [t for leg, t in cases["off_topic"] if any(m.how == "semantic" for m in matcher.match(t, leg))]
    recall = sum(hits) / len(hits)
    with capsys.disabled():
        print(
            f"\nintent threshold {matcher.rule_set.intent_threshold:g}: recall {recall:.1%} on"
            f" {len(hits)} paraphrases, {len(off)} of {len(cases['off_topic'])} off-topic sentences fired"
        )
    assert recall >= 0.8
    assert off == []


def test_embedder_vectors_are_unit_length_and_padding_free(embedder) -> None:
    short, long_ = "cancel my account", "I would like to cancel my account because the service is poor"
    batch = embedder.embed([short, long_, ""])
    alone = embedder.embed(["cancel my account please"])  # not cached: computed on its own
    assert batch.shape == (3, 384)
    assert np.allclose(np.linalg.norm(batch[:2], axis=1), 1.0, atol=1e-5)
    assert not batch[2].any()  # empty text: a zero row
    # Batched with a longer text (so padded) or alone, a sentence gets the same vector.
    again = Embedder.load().embed(["cancel my account please", long_])
    assert float(alone[0] @ again[0]) > 0.999
