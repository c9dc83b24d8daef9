"""Knowledge snippets: articles read from markdown, retrieved by meaning, attached to hints."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from analyze.assist import AssistPolicy
from analyze.embeddings import Embedder
from analyze.events import AgentHint
from analyze.knowledge import MAX_SNIPPET_CHARS, KnowledgeBase, read_articles
from analyze.rules import RuleMatcher, load_rules, parse_rules_yaml
from analyze.sentiment import SentimentScores
from transcribe.events import FinalSegment, StageTimes, segment_id


@pytest.fixture(scope="module")
def shipped(embedder: Embedder) -> KnowledgeBase:
    return KnowledgeBase.load(None, embedder)


def test_articles_are_read_as_titled_paragraphs(tmp_path: Path) -> None:
    (tmp_path / "refunds.md").write_text(
        "# Refund policy\n\nFull refund within 30 days.\nThen credit.\n\n"
        "## Details\n\n- over $200\n- needs approval\n"
    )
    (tmp_path / "notes.txt").write_text("not an article")
    passages = read_articles(tmp_path)
    assert [(p.article_id, p.title, p.text) for p in passages] == [
        ("refunds", "Refund policy", "Full refund within 30 days. Then credit."),
        ("refunds", "Refund policy", "over $200 needs approval"),
    ]


def test_the_shipped_knowledge_base_has_the_example_articles(shipped: KnowledgeBase) -> None:
    assert {
        "retention-offers",
        "refund-policy",
        "escalation-procedure",
        "identity-verification",
        "recording-disclosure",
        "competitor-price-match",
        "billing-disputes",
    } <= shipped.article_ids


@pytest.mark.parametrize(
    ("utterance", "article"),
    [
        ("I want to cancel my account, I'm leaving you", "retention-offers"),
        ("can I please speak to your manager", "escalation-procedure"),
        ("another company offers the same plan cheaper", "competitor-price-match"),
        ("there's a late fee on my bill I don't understand", "billing-disputes"),
        ("my internet has been down since yesterday again", "service-outage"),
    ],
)
def test_retrieval_finds_the_article_about_what_the_customer_said(
    shipped: KnowledgeBase, utterance: str, article: str
) -> None:
    snippet = shipped.retrieve(utterance)
    assert snippet is not None and snippet.article_id == article
    assert snippet.score is not None and 0 < snippet.score <= 1
    assert 0 < len(snippet.text) <= MAX_SNIPPET_CHARS + 2


def test_off_topic_talk_retrieves_nothing(shipped: KnowledgeBase) -> None:
    assert shipped.retrieve("my favourite colour is green and I like jazz") is None
    assert shipped.retrieve("   ") is None


def test_a_named_article_gives_its_opening_passage(shipped: KnowledgeBase) -> None:
    snippet = shipped.article("refund-policy")
    assert snippet is not None and snippet.title == "Refund policy" and snippet.score is None
    assert snippet.text.startswith("Purchases and plan charges are refundable in full within 30 days.")
    assert shipped.article("no-such-article") is None


def test_without_embeddings_only_named_articles_are_available() -> None:
    kb = KnowledgeBase.load(None, None)
    assert kb.retrieve("I want to cancel") is None
    assert kb.article("retention-offers") is not None


class NeutralScorer:
    def score(self, text: str) -> SentimentScores:
        return SentimentScores(compound=0.0, positive=0.0, negative=0.0, neutral=1.0)


def _final(text: str) -> FinalSegment:
    return FinalSegment(
        call_id="c1",
        leg="customer",
        segment_id=segment_id("c1", "customer", 0),
        start_ms=0,
        end_ms=1000,
        text=text,
        times=StageTimes(audio_captured_at=1.0, audio_received_at=1.0, emitted_at=2.0),
    )


def test_hints_carry_the_snippet_their_rule_asks_for(embedder: Embedder, shipped: KnowledgeBase) -> None:
    rules = parse_rules_yaml(
        textwrap.dedent(
            """
            version: "k1"
            rules:
              - {id: cancel, kind: hint, leg: customer, phrases: [cancel], hint: Retain., knowledge: auto}
              - id: refund
                kind: hint
                leg: customer
                phrases: [refund]
                hint: Refund.
                knowledge: refund-policy
              - {id: plain, kind: hint, leg: customer, phrases: [hello], hint: Greet.}
            """
        )
    )
    clock = itertools.count(1.0)
    policy = AssistPolicy(
        RuleMatcher(rules, embedder=embedder), NeutralScorer(), clock=lambda: next(clock), knowledge=shipped
    )
    hints = {
        e.rule_id: e
        for e in policy.on_event(_final("hello, I want to cancel my contract and get a refund"))
        if isinstance(e, AgentHint)
    }
    assert hints["cancel"].knowledge_id == "retention-offers" and hints["cancel"].knowledge_score
    assert hints["refund"].knowledge_id == "refund-policy" and hints["refund"].knowledge_score is None
    assert hints["refund"].knowledge_title == "Refund policy" and hints["refund"].knowledge_snippet
    assert hints["plain"].knowledge_id == "" and hints["plain"].knowledge_snippet == ""


def test_the_example_rules_name_only_shipped_articles(shipped: KnowledgeBase) -> None:
    named = {r.knowledge for r in load_rules().rules} - {"", "auto"}
    assert named and named <= shipped.article_ids
