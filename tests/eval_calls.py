"""The labelled evaluation set: scripted two-leg calls and the outcomes that must and must not happen.

Neutral turns are real speech (Asterisk phone prompts on the agent leg, LibriVox reading on the
customer leg); the words a rule needs are spoken by espeak-ng, since no recording says them.
An outcome label is a hint or alert rule id ("retention-cancel") or a compliance step's status at
the end of the call ("compliance:recording-disclosure=met"). The project owns this set: extend it
with every rule that ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from tests.calls import TestCall, build_call
from tests.speech import asterisk_prompts, librivox_utterances

DISCLOSED = "compliance:recording-disclosure=met"
NOT_DISCLOSED = "compliance:recording-disclosure=missed"
VERIFIED = "compliance:identity-verification=met"
NOT_VERIFIED = "compliance:identity-verification=missed"
TOPICAL = {"retention-cancel", "escalation-request", "competitor-mention", "billing-dispute"}


@dataclass(frozen=True)
class EvalCall:
    call: TestCall
    must: frozenset[str]
    must_not: frozenset[str]


def _eval(call: TestCall, must: set[str], must_not: set[str]) -> EvalCall:
    assert not must & must_not
    return EvalCall(call, frozenset(must), frozenset(must_not))


@cache
def eval_calls() -> tuple[EvalCall, ...]:
    prompts = asterisk_prompts()
    libri = librivox_utterances()
    p = [prompts[i] for i in range(0, len(prompts), max(1, len(prompts) // 10))]
    hello = "Thank you for calling, this call may be recorded for quality and training."
    return (
        _eval(
            build_call("eval-cancel", [hello, p[0]], [libri[0], "I want to cancel my account."]),
            must={"retention-cancel", DISCLOSED},
            must_not={"escalation-request", "competitor-mention", "billing-dispute"},
        ),
        _eval(
            build_call(
                "eval-escalation",
                [p[1], p[2], p[3]],
                [libri[1], "This is ridiculous. Let me speak to a manager.", "This is unacceptable."],
            ),
            must={"escalation-request", NOT_DISCLOSED},
            must_not={"retention-cancel", "competitor-mention", "billing-dispute", DISCLOSED},
        ),
        _eval(
            build_call(
                "eval-competitor", [hello, p[4]], [libri[2], "Verizon gives me the same plan for less."]
            ),
            must={"competitor-mention", DISCLOSED},
            must_not={"retention-cancel", "escalation-request", "billing-dispute"},
        ),
        _eval(
            build_call(
                "eval-verified",
                [
                    hello,
                    "Can you confirm your date of birth please?",
                    "Thanks. Your account balance is forty dollars.",
                ],
                ["Hi, I have a question about my bill.", "Yes, it's the fifth of June nineteen eighty five."],
            ),
            must={DISCLOSED, VERIFIED},
            must_not={NOT_VERIFIED, "retention-cancel", "escalation-request", "competitor-mention"},
        ),
        _eval(
            build_call(
                "eval-unverified",
                [hello, "Your account balance is forty dollars.", p[5]],
                ["Hi, I have a question about my bill.", libri[3]],
            ),
            must={DISCLOSED, NOT_VERIFIED},
            must_not={VERIFIED, "retention-cancel", "escalation-request", "competitor-mention"},
        ),
        _eval(
            build_call("eval-billing", [hello, p[6]], [libri[4], "I was charged twice this month."]),
            must={"billing-dispute", DISCLOSED},
            must_not={"retention-cancel", "escalation-request", "competitor-mention"},
        ),
        _eval(
            build_call("eval-neutral", [p[7], p[8], p[9]], [libri[0], libri[2], libri[4]]),
            must={NOT_DISCLOSED},
            must_not={*TOPICAL, DISCLOSED},
        ),
    )
