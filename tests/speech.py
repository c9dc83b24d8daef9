"""Real human speech for tests: LibriVox utterances (in the repo) and Asterisk phone prompts.

The Asterisk prompts are CC-BY-SA and come from Debian packages installed by the test setup
(`asterisk-core-sounds-en-wav`, `asterisk-core-sounds-en`); they are never copied into the repo.
"""

from __future__ import annotations

import gzip
import re
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

LIBRIVOX_DIR = Path(__file__).parent / "data" / "librivox"
ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


@dataclass(frozen=True)
class Utterance:
    name: str
    samples: np.ndarray  # int16 mono
    sample_rate_hz: int
    text: str  # reference transcript

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


def read_wav_mono(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path.name}: expected 16-bit PCM")
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            frames = frames.reshape(-1, w.getnchannels())[:, 0].copy()
        return frames, w.getframerate()


def normalise_text(text: str) -> str:
    """Lower case, digits and letters only: the form WER is computed on."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


@cache
def librivox_utterances() -> tuple[Utterance, ...]:
    refs: dict[str, str] = {}
    for line in (LIBRIVOX_DIR / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m:
            refs[m.group(2)] = normalise_text(m.group(1))
    out = []
    for name in sorted(refs):
        samples, rate = read_wav_mono(LIBRIVOX_DIR / f"{name}.wav")
        out.append(Utterance(name, samples, rate, refs[name]))
    return tuple(out)


def asterisk_available() -> bool:
    return ASTERISK_DIR.is_dir() and ASTERISK_TEXTS.is_file()


@cache
def asterisk_prompts(
    min_duration_s: float = 2.0, max_duration_s: float = 9.0, *, digits: bool = False
) -> tuple[Utterance, ...]:
    """Top-level prompts whose names start with a to l, with their texts, 8 kHz: those whose text
    has no digit, or with `digits` only those whose text has one ("Press 1 to ..." menus: score
    them with a WER that spells digits one way, as bench.scoring's canonical form does)."""
    if not asterisk_available():
        raise FileNotFoundError(
            "Asterisk prompts missing: apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en"
        )
    texts: dict[str, str] = {}
    for line in gzip.open(ASTERISK_TEXTS, "rt", encoding="utf-8", errors="replace"):
        if line.startswith(";") or ":" not in line:
            continue
        name, _, text = line.partition(":")
        texts[name.strip()] = text.strip()
    out = []
    for path in sorted(ASTERISK_DIR.glob("[a-l]*.wav")):
        text = texts.get(path.stem, "")
        # Skip prompts whose text is a stage direction or spells out symbols, not plain words.
        if not text or any(c in text for c in "[]<>()#*/") or bool(re.search(r"\d", text)) != digits:
            continue
        samples, rate = read_wav_mono(path)
        utt = Utterance(path.stem, samples, rate, normalise_text(text))
        if min_duration_s <= utt.duration_s <= max_duration_s:
            out.append(utt)
    return tuple(out)
