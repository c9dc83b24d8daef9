"""A call's spoken language: from its call.started metadata, else the configured default.

Codes are Whisper's (ISO 639-1 such as "en", "es", "de", plus a few ISO 639-3 it uses). Ingest
adapters carry the caller's language in metadata under their own keys: Genesys AudioHook as
`genesys.language` ("es-ES"), the generic WebSocket and replay as `language`, Twilio's custom
parameters as `custom.language`. A region or script suffix is dropped ("es-ES" -> "es"); an
unknown or malformed value falls back to the default (logged once per value, never fatal: call
metadata is the caller's input, not a setting).
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
METADATA_KEYS = ("language", "genesys.language", "custom.language", "input.language")

# faster_whisper.tokenizer._LANGUAGE_CODES (Whisper's 100 languages); kept here so that settings
# and the vLLM engine need not import faster-whisper.
WHISPER_LANGUAGES = frozenset(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi "
    "hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn "
    "no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi "
    "yi yo zh yue".split()
)
_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*$")
_warned: set[str] = set()


def normalise_language(value: str) -> str | None:
    """Whisper's code for a language tag ("es", "es-ES", "ES_mx" -> "es"), or None when unknown."""
    match = _TAG.match(value.strip())
    if match is None:
        return None
    code = match.group(1).lower()
    return code if code in WHISPER_LANGUAGES else None


def call_language(metadata: dict[str, str], default: str = DEFAULT_LANGUAGE) -> str:
    """The language a call's metadata names (first key of METADATA_KEYS present), else `default`."""
    for key in METADATA_KEYS:
        value = metadata.get(key)
        if not value:
            continue
        code = normalise_language(value)
        if code is not None:
            return code
        shown = value[:16]
        if shown not in _warned and len(_warned) < 100:
            _warned.add(shown)
            log.warning("unknown call language, using the default", extra={"key": key, "language": shown})
        return default
    return default
