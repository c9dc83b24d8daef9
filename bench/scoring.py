"""How the fidelity benchmark scores a transcript: WER on a canonical form, so that formatting
(digits, contractions, titles, a compound written open or closed) is not counted as a recognition
error; `plain=True` scores the texts as they are."""

from __future__ import annotations

import itertools

import jiwer

from tests.speech import normalise_text

_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
).split()
_SPELLING = {
    **{str(i): w for i, w in enumerate(_NUMBERS)},
    **{"30": "thirty", "40": "forty", "50": "fifty", "60": "sixty", "100": "hundred"},
    "i'm": "i am", "you're": "you are", "we're": "we are", "they're": "they are", "that's": "that is",
    "it's": "it is", "there's": "there is", "what's": "what is", "let's": "let us", "i'll": "i will",
    "you'll": "you will", "we'll": "we will", "i've": "i have", "you've": "you have", "we've": "we have",
    "i'd": "i would", "can't": "can not", "cannot": "can not", "won't": "will not", "don't": "do not",
    "doesn't": "does not", "didn't": "did not", "isn't": "is not", "aren't": "are not",
    "wasn't": "was not", "couldn't": "could not", "wouldn't": "would not", "mr": "mister",
    "mrs": "missus", "dr": "doctor", "ok": "okay",
}  # fmt: skip


def canonical(text: str) -> str:
    """The form both sides of every WER here are scored in: normalise_text, then one spelling for
    what Whisper may write either way ("press 1"/"press one", "I'm"/"I am", "Mr."/"mister",
    "cannot"/"can not"), as Whisper's own English normaliser does for its WER figures. Formatting
    is not recognition: without this, a turn decoded with slightly different edges that writes
    "1" where the whole-utterance decode wrote "one" counted as an error of the streaming path."""
    return " ".join(_SPELLING.get(w, w) for w in normalise_text(text).split())


def closed_compounds(texts: list[str]) -> set[str]:
    """Words that the texts also write open, as two words: "touchtone" where another place has
    "touch tone", "nonadministrator" / "non administrator"."""
    words = [text.split() for text in texts]
    single = {w for ws in words for w in ws}
    return {a + b for ws in words for a, b in itertools.pairwise(ws) if a + b in single}


def close_compounds(text: str, compounds: set[str]) -> str:
    """`text` with every open spelling of `compounds` written closed."""
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        if i + 1 < len(words) and words[i] + words[i + 1] in compounds:
            out.append(words[i] + words[i + 1])
            i += 2
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def wer(refs: list[str], hyps: list[str], *, plain: bool = False) -> float:
    """WER over the (canonical, unless `plain`) texts. Canonical scoring also takes a compound
    written open in one text and closed in another ("touch tone" / "touchtone": the reference
    itself has both) as one spelling, written closed on both sides."""
    if plain:
        return jiwer.wer(refs, hyps)
    refs, hyps = [canonical(r) for r in refs], [canonical(h) or "-" for h in hyps]
    compounds = closed_compounds(refs + hyps)
    closed = [close_compounds(text, compounds) for text in refs + hyps]
    return jiwer.wer(closed[: len(refs)], closed[len(refs) :])
