"""Per-utterance cost of the rules: `python -m bench.rules [--phrases 500] [--tune]`.

Prints p50/p95/p99 in milliseconds, from one run, for
- exact + fuzzy matching of a rule set with N phrases (all fuzzy, the worst case),
- the default assessment path: AssistPolicy on a final with VADER, those rules, no embeddings,
- semantic matching: one utterance embedded (cache off) and compared with every intent example,
- the assessment path with embeddings (semantic intents on finals and an `auto` knowledge hint).
With --tune, also the precision/recall sweeps behind the default fuzzy cutoff and intent
threshold, on tests/data/fuzzy_phrases.yaml and tests/data/intents.yaml.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from analyze.assist import AssistPolicy
from analyze.embeddings import Embedder
from analyze.knowledge import KnowledgeBase
from analyze.rules import RuleMatcher, RuleSet, load_rules, parse_rules
from analyze.sentiment import VaderScorer
from transcribe.events import FinalSegment, StageTimes, segment_id

DATA = Path(__file__).parents[1] / "tests" / "data"
_VERBS = "cancel close stop end pause change upgrade downgrade transfer move dispute report fix reset".split()
_OBJECTS = (
    "my account|the account|my subscription|my contract|my plan|the service|my internet|my phone line"
    "|the bill|my payment|the charge|my order|the router|my password|the appointment|my address"
    "|the refund|my membership|the upgrade|my data plan"
).split("|")
_TAILS = ["", " today", " right now", " please", " for good", " this month"]
_FILLER = (
    "well yeah so I was wondering about the thing with the bill last month and honestly I am not sure"
    " what happened because the internet kept dropping in the evening and nobody told me anything"
).split()


def synthetic_rules(phrase_count: int, *, seed: int = 7) -> RuleSet:
    """`phrase_count` distinct fuzzy phrases of 2 to 5 words, ten per rule."""
    rng = random.Random(seed)
    phrases = sorted({f"{v} {o}{t}" for v in _VERBS for o in _OBJECTS for t in _TAILS})
    rng.shuffle(phrases)
    phrases = phrases[:phrase_count]
    rules = [
        {
            "id": f"r{i:03d}",
            "kind": "hint",
            "leg": "customer",
            "phrases": phrases[i : i + 10],
            "fuzzy": True,
            "hint": "h",
        }
        for i in range(0, len(phrases), 10)
    ]
    return parse_rules({"version": f"bench-{phrase_count}", "rules": rules})


def utterances(count: int, *, seed: int = 11) -> list[str]:
    """Call-like customer sentences of 6 to 25 words, a third of them holding a garbled phrase."""
    rng = random.Random(seed)
    cases = yaml.safe_load((DATA / "fuzzy_phrases.yaml").read_text())
    garbled = [text for _, text, _ in cases["garbled"]]
    out = []
    for i in range(count):
        words = rng.sample(_FILLER, rng.randint(6, 20))
        if i % 3 == 0:
            words.insert(rng.randint(0, len(words)), rng.choice(garbled))
        out.append(" ".join(words) + f" {i}")  # unique text: no embedding cache hits
    return out


def percentiles(run: Callable[[str], object], texts: list[str]) -> str:
    for text in texts[:20]:  # warm up
        run(text)
    times = []
    for text in texts:
        start = time.perf_counter()
        run(text)
        times.append((time.perf_counter() - start) * 1000)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return f"p50 {p50:6.3f} ms  p95 {p95:6.3f} ms  p99 {p99:6.3f} ms  (n={len(times)})"


def policy_runner(policy: AssistPolicy) -> Callable[[str], object]:
    counter = itertools.count()

    def run(text: str) -> object:
        n = next(counter)
        call_id = f"bench-{n // 20}"
        return policy.on_event(
            FinalSegment(
                call_id=call_id,
                leg="customer",
                segment_id=segment_id(call_id, "customer", n * 1000),
                start_ms=n * 1000,
                end_ms=n * 1000 + 900,
                text=text,
                times=StageTimes(audio_captured_at=1.0, audio_received_at=1.0, emitted_at=1.0),
            )
        )

    return run


def tune() -> None:
    fuzzy = yaml.safe_load((DATA / "fuzzy_phrases.yaml").read_text())
    base = load_rules()
    print("fuzzy cutoff sweep (example rules; recall on garbled phrases, false hits on clean talk):")
    for cutoff in (75, 80, 82, 84, 85, 86, 88, 90, 95):
        matcher = RuleMatcher(replace(base, fuzzy_cutoff=float(cutoff)))
        hit = wrong = 0
        for leg, text, want in fuzzy["garbled"]:
            found = matcher.match_all(text, leg, semantic=False)
            hit += want in {m.rule.id for m in found.rules} | {s.item.id for s in found.compliance}
        for leg, text in fuzzy["clean"]:
            found = matcher.match_all(text, leg, semantic=False)
            wrong += bool(found.rules or found.compliance)
        print(f"  {cutoff:3d}: recall {hit / len(fuzzy['garbled']):.1%}  false {wrong}/{len(fuzzy['clean'])}")
    intents = yaml.safe_load((DATA / "intents.yaml").read_text())
    embedder = Embedder.load()
    print("intent threshold sweep (recall on paraphrases, off-topic sentences that fired an intent):")
    for threshold in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65):
        matcher = RuleMatcher(replace(base, intent_threshold=threshold), embedder=embedder)
        hit = sum(want in {m.rule.id for m in matcher.match(t, leg)} for leg, t, want in intents["in_scope"])
        off = sum(any(m.how == "semantic" for m in matcher.match(t, leg)) for leg, t in intents["off_topic"])
        print(
            f"  {threshold:.2f}: recall {hit / len(intents['in_scope']):.1%}"
            f"  off-topic fired {off}/{len(intents['off_topic'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phrases", type=int, default=500)
    parser.add_argument("--utterances", type=int, default=2000)
    parser.add_argument("--tune", action="store_true")
    args = parser.parse_args()

    rules = synthetic_rules(args.phrases)
    texts = utterances(args.utterances)
    phrase_total = sum(len(r.phrases) for r in rules.rules)
    words = np.mean([len(t.split()) for t in texts])
    print(
        f"{phrase_total} fuzzy phrases in {len(rules.rules)} rules;"
        f" {len(texts)} utterances, {words:.1f} words on average"
    )
    matcher = RuleMatcher(rules)
    print("exact + fuzzy match        ", percentiles(lambda t: matcher.match_all(t, "customer"), texts))
    exact = RuleMatcher(replace(rules, rules=tuple(replace(r, fuzzy=False) for r in rules.rules)))
    print("exact only                 ", percentiles(lambda t: exact.match_all(t, "customer"), texts))
    policy = AssistPolicy(matcher, VaderScorer())
    print("default path (VADER+rules) ", percentiles(policy_runner(policy), texts))

    embedder = Embedder.load(cache_size=0)
    example = load_rules()
    semantic = RuleMatcher(example, embedder=embedder)
    examples = sum(len(r.intents) for r in example.rules)
    sem_texts = texts[: max(200, args.utterances // 4)]
    print(
        f"semantic: {examples} intent examples + {len(example.intent_background)} background (example rules)"
    )
    print("semantic match (1 embed)   ", percentiles(lambda t: semantic.match_all(t, "customer"), sem_texts))
    combined = RuleMatcher(
        replace(
            rules,
            rules=rules.rules + example.rules,
            compliance=example.compliance,
            intent_background=example.intent_background,
        ),
        embedder=embedder,
    )
    knowledge = KnowledgeBase.load(None, embedder)
    full = AssistPolicy(combined, VaderScorer(), knowledge=knowledge)
    print("path with embeddings       ", percentiles(policy_runner(full), sem_texts))
    if args.tune:
        tune()


if __name__ == "__main__":
    main()
