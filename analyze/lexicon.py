"""Contact-center additions to VADER's lexicon. Pure.

VADER scores words; a caller's worst complaints often have none ("on hold for forty five
minutes", "third time I've called"). Each phrase pattern here is rewritten into one synthetic
token that the lexicon scores, so VADER's own rules (negation, "but", intensity) still apply to
it: "I don't want to cancel my account" comes out mildly positive, as a retention agent hears it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Word valences on VADER's -4..+4 scale, replacing VADER's own where both have one.
CONTACT_CENTER_WORDS: dict[str, float] = {
    # "cancel the appointment and book Thursday" is routine; churn is a phrase below.
    "cancel": 0.0,
    "cancelled": 0.0,
    "canceled": 0.0,
    "cancelling": 0.0,
    "canceling": 0.0,
    "cancels": 0.0,
    "cancellation": 0.0,
    "ridiculous": -2.2,  # VADER -1.5: on a service call it is a strong complaint
    "outage": -1.5,
    "runaround": -1.8,
    "disconnected": -1.2,
    "unresolved": -1.5,
    "overcharged": -1.8,
    "sorted": 1.2,
}

_NUMBER = (
    r"(?:\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|fifteen|twenty|thirty|forty|fifty|sixty)"
)
_QUANTITY = rf"(?:(?:over|about|almost|nearly|like|more than|at least)\s+)?{_NUMBER}(?:[\s-]+{_NUMBER})?"
_TIMES = r"(?:three|four|five|six|seven|several|many|multiple|\d+)\s+times"
_NEG_AUX = r"(?:not|isn'?t|doesn'?t|hasn'?t|won'?t|can'?t|never)"


@dataclass(frozen=True, slots=True)
class Phrase:
    token: str  # synthetic lexicon entry, letters only (VADER strips punctuation)
    valence: float
    pattern: str


PHRASES: tuple[Phrase, ...] = (
    # "I'd like to ..." opens most requests: VADER's positive "like" would tilt every one of them.
    Phrase("ccrequest", 0.0, r"\b(?:i'?d|i\s+would|we'?d|we\s+would)\s+like\s+to\b"),
    Phrase("cclonghold", -2.0, rf"\bon\s+hold\s+for\s+{_QUANTITY}\s+(?:minutes?|hours?)\b"),
    Phrase(
        "cclongwait",
        -1.8,
        rf"\bwaiting\s+(?:for\s+)?{_QUANTITY}\s+(?:hours?|days?|weeks?|months?)\b"
        rf"|\bbeen\s+waiting\s+(?:for\s+)?{_QUANTITY}\s+minutes\b",
    ),
    Phrase(
        "ccrepeatcall",
        -2.2,
        r"\b(?:second|third|fourth|fifth|sixth|tenth|\d+(?:st|nd|rd|th))\s+time\s+"
        r"(?:i'?ve\s+|i\s+have\s+|i\s+)?(?:called|rung|phoned|contacted)\b"
        rf"|\b(?:called|rung|phoned)(?:\s+\w+)?\s+{_TIMES}\b",
    ),
    Phrase(
        "ccrepeatexplain",
        -1.5,
        rf"\b(?:explained|told\s+you)\s+this\s+(?:{_TIMES}|already)\b|\balready\s+(?:explained|told\s+you)\b",
    ),
    Phrase(
        "ccnocallback",
        -2.0,
        r"\b(?:nobody|no\s+one|never)\s+(?:ever\s+)?(?:called|got|rang)\s+(?:me\s+)?back\b",
    ),
    Phrase(
        "ccstillbroken",
        -2.0,
        rf"\bstill\s+{_NEG_AUX}\s+(?:\w+\s+)?(?:working|work|fixed|resolved|arrived|connected|sorted)\b",
    ),
    Phrase("cctransferred", -1.8, rf"\btransferred\s+(?:me\s+)?(?:again|{_TIMES})\b"),
    Phrase("cchungup", -2.2, r"\b(?:hung|hang)\s+up\s+on\s+me\b"),
    Phrase("ccchargedtwice", -1.8, r"\b(?:charged\s+(?:me\s+)?twice|double[\s-]charged)\b"),
    Phrase("ccescalate", -1.2, r"\b(?:speak|talk)\s+to\s+(?:a|your|the)\s+(?:manager|supervisor)\b"),
    Phrase(
        "ccchurn",
        -1.2,
        r"\b(?:cancel|close|terminate)\s+(?:my|the|our)\s+(?:account|subscription|service|contract|membership)\b"
        r"|\bswitch(?:ing)?\s+to\s+(?:another|a\s+different)\s+(?:provider|company|carrier|network)\b",
    ),
    Phrase(
        "ccfixed",
        2.0,
        r"\bthat(?:'s|\s+has)?\s+(?:fixed|sorted|solved)\s+it\b"
        r"|\b(?:it'?s|it\s+is)\s+(?:working|back)\s+(?:now|again|perfectly)\b",
    ),
)


class PhraseLexicon:
    """Rewrites contact-center phrases into synthetic tokens that VADER's lexicon scores."""

    def __init__(self, phrases: tuple[Phrase, ...] = PHRASES) -> None:
        self._phrases = phrases
        combined = "|".join(f"(?P<{p.token}>{p.pattern})" for p in phrases)
        self._pattern = re.compile(combined, re.IGNORECASE)

    def token_valences(self) -> dict[str, float]:
        return {p.token: p.valence for p in self._phrases}

    def rewrite(self, text: str) -> str:
        return self._pattern.sub(lambda m: f" {m.lastgroup} ", text)

    def found(self, text: str) -> list[str]:
        """Tokens of the phrases present in `text` (for tests and explanations)."""
        return [m.lastgroup or "" for m in self._pattern.finditer(text)]
