"""Upgrade-request signatures: Twilio's X-Twilio-Signature and AudioHook's RFC 9421 signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.signatures import (
    AuthError,
    NonceCache,
    parse_signature,
    parse_signature_input,
    sign_audiohook,
    signature_base,
    twilio_signature,
    verify_audiohook,
    verify_twilio,
)

SECRET = base64.b64encode(b"a client secret of thirty-two b.").decode()
NOW = 1_700_000_000.0


def test_twilio_signature_matches_twilios_published_example():
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_upgrade_is_verified_over_the_full_url_with_or_without_the_default_port():
    signature = twilio_signature("token", "wss://gw.example.com/twilio?site=2")
    verify_twilio("token", "wss://gw.example.com/twilio?site=2", signature)
    verify_twilio("token", "wss://gw.example.com:443/twilio?site=2", signature)
    with pytest.raises(AuthError, match="bad_signature"):
        verify_twilio("token", "wss://gw.example.com/twilio?site=3", signature)
    with pytest.raises(AuthError, match="bad_signature"):
        verify_twilio("other", "wss://gw.example.com/twilio?site=2", signature)
    with pytest.raises(AuthError, match="missing_signature"):
        verify_twilio("token", "wss://gw.example.com/twilio", None)


def test_rfc9421_signature_base_and_hmac_match_the_rfcs_appendix_b_2_5_example():
    inputs = parse_signature_input(
        'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
    )
    headers = {
        "host": "example.com",
        "date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "content-type": "application/json",
    }
    base = signature_base(inputs["sig-b25"], "/foo?param=Value&Pet=dog", headers)
    key = base64.b64decode(
        "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
    )
    signature = base64.b64encode(hmac.new(key, base, hashlib.sha256).digest()).decode()
    assert signature == "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8="
    assert parse_signature(f"sig-b25=:{signature}:")["sig-b25"] == base64.b64decode(signature)


def audiohook_headers(now: float = NOW, secret: str = SECRET, **changes: str) -> dict[str, str]:
    headers = {
        "Host": "audiohook.example.com",
        "Audiohook-Organization-Id": "d7934305-0972-4844-938e-9060eef73d05",
        "Audiohook-Correlation-Id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
        "Audiohook-Session-Id": "e160e428-53e2-487c-977d-96989bf5c99d",
        "X-API-KEY": "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh",
    }
    headers |= sign_audiohook(
        request_target="/audiohook",
        headers=headers,
        api_key=headers["X-API-KEY"],
        client_secret_b64=secret,
        now=now,
    )
    return {k.lower(): v for k, v in (headers | changes).items()}


def verify(
    headers: dict[str, str], *, now: float = NOW, nonces: NonceCache | None = None, target="/audiohook"
):
    verify_audiohook(
        request_target=target,
        headers=headers,
        client_secret_b64=SECRET,
        nonces=nonces or NonceCache(),
        now=now,
    )


def test_a_signed_audiohook_upgrade_verifies():
    verify(audiohook_headers())


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"audiohook-session-id": "another-session"}, "bad_signature"),
        ({"host": "evil.example.com"}, "bad_signature"),
        ({"x-api-key": "another-key"}, "wrong_keyid"),
        ({"signature": "sig1=:AAAA:"}, "bad_signature"),
        ({"signature": "sig1=:not base64!:"}, "malformed_signature"),
        ({"signature-input": 'sig1=("@authority");keyid="x"'}, "uncovered_components"),
        ({"signature-input": "sig1=((("}, "malformed_signature"),
    ],
)
def test_a_tampered_audiohook_upgrade_is_refused(tamper, reason):
    with pytest.raises(AuthError) as caught:
        verify(audiohook_headers() | tamper)
    assert caught.value.reason == reason


def test_another_path_or_secret_does_not_verify():
    with pytest.raises(AuthError, match="bad_signature"):
        verify(audiohook_headers(), target="/other")
    with pytest.raises(AuthError, match="bad_signature"):
        verify(audiohook_headers(secret=base64.b64encode(b"another secret" * 3).decode()))


def test_an_old_or_future_signature_is_refused():
    with pytest.raises(AuthError, match="signature_expired"):
        verify(audiohook_headers(now=NOW - 3600))
    with pytest.raises(AuthError, match="signature_expired"):
        verify(audiohook_headers(now=NOW + 3600))


def test_a_replayed_nonce_is_refused():
    nonces = NonceCache()
    headers = audiohook_headers()
    verify(headers, nonces=nonces)
    with pytest.raises(AuthError, match="nonce_reused"):
        verify(headers, nonces=nonces)


def test_missing_signature_headers_are_refused():
    headers = audiohook_headers()
    del headers["signature"]
    with pytest.raises(AuthError, match="missing_signature"):
        verify(headers)


def test_the_nonce_cache_is_bounded_and_forgets_expired_nonces():
    cache = NonceCache(max_entries=3)
    for i in range(10):
        assert cache.add(f"n{i}", expires_at=100.0, now=0.0)
    assert len(cache._seen) <= 3
    assert cache.add("n9", expires_at=100.0, now=0.0) is False
    assert cache.add("n9", expires_at=300.0, now=200.0) is True  # expired, so new again


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_signature_headers_parse_or_raise_auth_error(text):
    for parse in (parse_signature_input, parse_signature):
        try:
            parse(text)
        except AuthError as error:
            assert error.reason in ("malformed_signature", "unsupported_signature")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["signature-input", "signature", "x-api-key", "host"]), st.text(max_size=80)
    )
)
def test_fuzz_garbled_audiohook_headers_are_refused_never_crash(changes):
    with pytest.raises(AuthError):
        verify(audiohook_headers() | changes | {"signature": "sig1=:AAAA:"})
