"""The caches on the hot path: verified ids, signed ids and their Set-Cookie headers, and the
cookie storage sending an unchanged cookie back as it came. A cache must never change an
answer: tampered, rebound or rotated cookies get exactly what they would get without it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

import pytest

from websession import create_cookie, create_cookie_session_storage
from websession.cookie import find_cookie

ID = "0123456789abcdef0123456789abcdef01234567"


def _pair(header: str) -> str:
    return header.split(";")[0]


def test_a_cached_id_still_rejects_every_tampered_variant() -> None:
    cookie = create_cookie("s", secrets=["k"])
    signed = cookie.sign(ID)
    assert cookie.unsign(signed) is not None and cookie.unsign(signed).value == ID  # type: ignore[union-attr]
    for index in range(len(signed)):
        char = signed[index]
        flipped = signed[:index] + ("A" if char != "A" else "B") + signed[index + 1 :]
        verified = cookie.unsign(flipped)
        assert verified is None or (verified.value == ID and flipped.rstrip("=") == signed.rstrip("="))


def test_a_cached_id_does_not_verify_under_another_binding() -> None:
    cookie = create_cookie("s", secrets=["k"])
    signed = cookie.sign(ID, binding="firefox")
    assert cookie.unsign(signed, binding="firefox").value == ID  # type: ignore[union-attr]
    assert cookie.unsign(signed, binding="chrome") is None
    assert cookie.unsign(signed) is None


def test_a_cookie_signed_with_a_retired_secret_stays_stale_on_every_read() -> None:
    old = create_cookie("s", secrets=["old"]).serialize(ID)
    cookie = create_cookie("s", secrets=["new", "old"])
    for _ in range(3):
        verified = cookie.read(_pair(old))
        assert verified is not None and verified.value == ID and verified.stale


def test_new_secrets_mean_a_new_cookie_object_and_no_shared_cache() -> None:
    first = create_cookie("s", secrets=["a"])
    header = _pair(first.serialize(ID))
    assert first.read(header) is not None
    assert create_cookie("s", secrets=["b"]).read(header) is None


def test_the_caches_stay_bounded() -> None:
    cookie = create_cookie("s", secrets=["k"])
    for number in range(10_000):
        value = f"{number:040x}"
        assert cookie.read(_pair(cookie.serialize(value))).value == value  # type: ignore[union-attr]
    assert len(cookie._verified_ids) <= 4096
    assert len(cookie._signed_ids) <= 4096
    assert len(cookie._id_headers) <= 4096


def test_overrides_are_never_served_from_the_header_cache() -> None:
    cookie = create_cookie("s", secrets=["k"], max_age=60)
    plain = cookie.serialize(ID)
    assert "Max-Age=60" in plain
    assert "Max-Age=5;" in cookie.serialize(ID, max_age=5)
    assert cookie.serialize(ID) == plain


def test_long_values_and_data_are_signed_afresh() -> None:
    cookie = create_cookie("s", secrets=["k"])
    long_value = "x" * 65
    assert cookie.unsign(cookie.sign(long_value)).value == long_value  # type: ignore[union-attr]
    data = {"a": [1]}
    first = cookie.unsign(cookie.sign(data))
    assert first is not None
    first.value["a"].append(2)  # a caller that mutates what it got back...
    again = cookie.unsign(cookie.sign(data))
    assert again is not None and again.value == {"a": [1]}  # ...never changes the next answer


def _signed_by_another_encoder(data_text: str, secret: str) -> str:
    """A cookie value as another implementation might write it: same format, other JSON spacing."""
    payload = base64.b64encode(data_text.encode()).decode()
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{base64.b64encode(mac).decode().rstrip('=')}"


def test_cookie_storage_sends_an_unchanged_cookie_back_byte_for_byte() -> None:
    storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"], max_age=60))
    signed = _signed_by_another_encoder('{"b": 1, "a": [1.0]}', "k")
    header = f"s={quote(signed, safe='')}"
    session = storage.get_session(header)
    assert dict(session) == {"b": 1, "a": [1.0]}
    set_cookie = storage.commit_session(session)
    assert set_cookie is not None and "Max-Age=60" in set_cookie
    assert find_cookie(_pair(set_cookie), "s") == signed  # not re-encoded
    session["b"] = 2
    changed = storage.commit_session(session)
    assert changed is not None and find_cookie(_pair(changed), "s") != signed
    assert dict(storage.get_session(_pair(changed))) == {"b": 2, "a": [1.0]}


def test_cookie_storage_re_signs_an_unchanged_cookie_from_a_retired_secret() -> None:
    signed = _signed_by_another_encoder('{"a":1}', "old")
    storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["new", "old"], max_age=60))
    session = storage.get_session(f"s={quote(signed, safe='')}")
    assert session.resign
    set_cookie = storage.commit_session(session)
    assert set_cookie is not None
    fresh = find_cookie(_pair(set_cookie), "s")
    assert fresh != signed
    assert create_cookie("s", secrets=["new"]).read(_pair(set_cookie)).value == {"a": 1}  # type: ignore[union-attr]


def test_cookie_storage_does_not_reuse_a_cookie_under_another_binding() -> None:
    storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"], max_age=60))
    first = storage.get_session(None, binding="ua-1")
    first["a"] = 1
    header = _pair(storage.commit_session(first) or "")
    session = storage.get_session(header, binding="ua-1")
    session.binding = "ua-2"
    set_cookie = storage.commit_session(session)
    assert set_cookie is not None
    assert storage.get_session(_pair(set_cookie), binding="ua-2")["a"] == 1
    assert storage.get_session(_pair(set_cookie), binding="ua-1").is_new


DATA = {"user": 7, "roles": ["admin"]}


def test_remembered_data_still_rejects_every_tampered_variant() -> None:
    cookie = create_cookie("s", secrets=["k"])
    signed = cookie.sign(DATA)
    assert (signed, None) in cookie._verified_texts
    for index in range(len(signed)):
        char = signed[index]
        flipped = signed[:index] + ("A" if char != "A" else "B") + signed[index + 1 :]
        verified = cookie.unsign(flipped)
        assert verified is None or (verified.value == DATA and flipped.rstrip("=") == signed.rstrip("="))


def test_remembered_data_does_not_verify_under_another_binding_or_other_secrets() -> None:
    cookie = create_cookie("s", secrets=["k"])
    signed = cookie.sign(DATA, binding="firefox")
    assert cookie.unsign(signed, binding="firefox").value == DATA  # type: ignore[union-attr]
    assert cookie.unsign(signed, binding="chrome") is None
    assert cookie.unsign(signed) is None
    assert create_cookie("s", secrets=["other"]).unsign(signed, binding="firefox") is None


def test_remembered_data_from_a_retired_secret_stays_stale() -> None:
    old = create_cookie("s", secrets=["old"]).serialize(DATA)
    cookie = create_cookie("s", secrets=["new", "old"])
    for _ in range(3):
        verified = cookie.read(_pair(old))
        assert verified is not None and verified.value == DATA and verified.stale


def test_every_read_of_remembered_data_gets_a_value_of_its_own() -> None:
    cookie = create_cookie("s", secrets=["k"], format="remix")
    header = _pair(cookie.serialize(DATA))
    for _ in range(3):
        verified = cookie.read(header)
        assert verified is not None and verified.value == DATA
        verified.value["roles"].append("root")  # a request that changes what it read in place
    storage = create_cookie_session_storage(cookie=cookie)
    session = storage.get_session(header)
    session["roles"].append("root")
    assert storage.get_session(header)["roles"] == ["admin"]


def test_data_caches_stay_bounded_and_keep_only_small_values() -> None:
    cookie = create_cookie("s", secrets=["k"], max_age=60)
    for number in range(5000):
        signed = cookie.sign({"n": number})
        assert cookie.unsign(signed).value == {"n": number}  # type: ignore[union-attr]
        cookie.serialize_raw(signed)
    assert len(cookie._verified_texts) <= 4096 and len(cookie._signed_headers) <= 4096
    large = cookie.sign({"blob": "x" * 600})
    cookie.serialize_raw(large)
    assert (large, None) not in cookie._verified_texts and large not in cookie._signed_headers
    assert cookie.unsign(large).value == {"blob": "x" * 600}  # type: ignore[union-attr]


def test_sealed_values_are_never_remembered() -> None:
    from websession.encryption import create_encrypted_cookie

    cookie = create_encrypted_cookie("s", keys=["k" * 32], max_age=60)
    for _ in range(3):
        cookie.serialize({"a": 1})
    assert not cookie._signed_headers and not cookie._verified_texts


def test_a_repeated_cookie_header_still_verifies_and_hands_out_a_fresh_value() -> None:
    cookie = create_cookie("s", secrets=["k"])
    header = "theme=dark; " + _pair(cookie.serialize({"cart": [1]})) + "; other=1"
    for encoded in (header, header.encode("latin-1")):
        first = cookie.parse(encoded)
        first["cart"].append(2)  # one request's in-place change
        assert cookie.parse(encoded) == {"cart": [1]}
    signed = _pair(cookie.serialize({"cart": [1]})).partition("=")[2]
    for index in range(len(signed)):
        flipped = signed[:index] + ("A" if signed[index] != "A" else "B") + signed[index + 1 :]
        tampered = header.replace(signed, flipped)
        assert cookie.parse(tampered) in (None, {"cart": [1]})
        assert cookie.parse(tampered) == cookie.parse(tampered)


def test_the_header_cache_stays_bounded_and_skips_long_headers() -> None:
    cookie = create_cookie("s", secrets=["k"])
    value = _pair(cookie.serialize(ID))
    for number in range(5000):
        assert cookie.parse(f"n={number}; {value}") == ID
    assert len(cookie._found) <= 1024
    long = "pad=" + "x" * 2000 + "; " + value
    assert cookie.parse(long) == ID
    assert long not in cookie._found


def test_a_remembered_value_that_no_longer_decodes_reads_as_missing_not_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cookie = create_cookie("s", secrets=["k"])
    signed = cookie.sign({"deep": [[[1]]]})
    assert cookie.unsign(signed) is not None  # now remembered

    def too_deep(text: str) -> object:
        raise ValueError("nested too deeply for this stack")

    monkeypatch.setattr("websession.cookie.codec.loads", too_deep)
    assert cookie.unsign(signed) is None
    assert create_cookie("s", secrets=["k"]).unsign(signed) is None  # as without the cache


def test_huge_bindings_are_never_kept_in_a_cache() -> None:
    cookie = create_cookie("s", secrets=["k"])
    for number in range(3):
        binding = str(number) * 100_000
        for value in (ID, {"n": number}):
            header = _pair(cookie.serialize(value, binding=binding))
            assert cookie.read(header, binding=binding).value == value  # type: ignore[union-attr]
    caches = (cookie._verified_ids, cookie._verified_texts, cookie._signed_ids, cookie._id_headers)
    held = sum(len(part) for cache in caches for key in cache for part in key if isinstance(part, str))
    assert held < 3_000


def test_str_and_bytes_headers_are_kept_apart_so_python_b_does_not_warn() -> None:
    import subprocess
    import sys

    script = (
        "from websession import create_cookie\n"
        "cookie = create_cookie('s', secrets=['k'])\n"
        "header = cookie.serialize({'n': 1}).split(';')[0]\n"
        "assert cookie.parse(header) == {'n': 1}\n"
        "assert cookie.parse(header.encode('latin-1')) == {'n': 1}\n"
    )
    run = subprocess.run([sys.executable, "-bb", "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
