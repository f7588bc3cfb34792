"""The "remix-v3" cookie and record formats. Vectors were produced by @remix-run/cookie 0.5.3
(tests/interop checks the same against the live package); the default "remix" format must not
change by a byte."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from websession import create_cookie
from websession.codec import CorruptRecordError, decode_v3, encode_v3
from websession.cookie import Cookie, find_cookie

ID = "2f1c7a52-7d3e-4d8e-9d43-2b7b1c0e9a10"
SIGNED_ID = "MmYxYzdhNTItN2QzZS00ZDhlLTlkNDMtMmI3YjFjMGU5YTEw./gMNDg3l9vjJvp8V3iYHyIzIImuUMVuZpzdd4f0Qu6c"


def v3(**options: object) -> Cookie:
    return create_cookie("sess", secrets=["s1", "s2"], format="remix-v3", **options)  # type: ignore[arg-type]


def test_default_format_is_unchanged() -> None:
    remix = create_cookie("sess", secrets=["s1", "s2"], http_only=False)
    assert remix.format == "remix"
    assert remix.serialize({"user": "ü€😀", "n": 1}) == (
        "sess=eyJ1c2VyIjoiw7zigqzwn5iAIiwibiI6MX0%3D.0dNmxEzWhHC%2BFLolQYAT22xXwNKa5YHvdExst0pVdok; "
        "Path=/; SameSite=Lax"
    )
    assert (
        create_cookie("sess", http_only=False).serialize({"a": 1})
        == "sess=eyJhIjoxfQ%3D%3D; Path=/; SameSite=Lax"
    )
    assert create_cookie("s", max_age=9.7, domain="d", secure=True).serialize(1).split("; ")[1:] == [
        "Max-Age=9",
        "Domain=d",
        "Path=/",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
    ]


def test_v3_cookies_match_remix_run_cookie() -> None:
    full = v3(
        max_age=3600,
        domain="example.com",
        secure=True,
        partitioned=True,
        expires=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    )
    assert full.serialize(ID) == (
        f"sess={SIGNED_ID}; Domain=example.com; Expires=Wed, 02 Jan 2030 03:04:05 GMT; HttpOnly; "
        "Max-Age=3600; Partitioned; Path=/; SameSite=Lax; Secure"
    )
    assert v3(http_only=False).serialize(ID) == f"sess={SIGNED_ID}; Path=/; SameSite=Lax"
    assert v3(http_only=False).serialize("ü€😀") == (
        "sess=w7zigqzwn5iA.HmOAstxOgHFhFCsx9xDaIGAXdvCqwtd4hrdp36doXqk; Path=/; SameSite=Lax"
    )
    unsigned = create_cookie("sess", http_only=False, format="remix-v3")
    assert unsigned.serialize("abc") == "sess=YWJj; Path=/; SameSite=Lax"


def test_v3_partitioned_implies_secure_as_in_remix_run_cookie() -> None:
    assert v3(partitioned=True).serialize(ID).endswith("; Partitioned; Path=/; SameSite=Lax; Secure")


def test_v3_expired_cookie() -> None:
    assert v3(max_age=60).serialize_expired() == (
        "sess=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Path=/; SameSite=Lax"
    )


def test_v3_parse_reads_text_and_never_percent_decodes() -> None:
    cookie = v3()
    assert cookie.parse(f"sess={SIGNED_ID}") == ID
    assert cookie.parse("x=1; sess=w7zigqzwn5iA.HmOAstxOgHFhFCsx9xDaIGAXdvCqwtd4hrdp36doXqk") == "ü€😀"
    encoded = SIGNED_ID.replace("/", "%2F")
    assert cookie.parse(f"sess={encoded}") is None  # @remix-run/cookie would not decode it either
    assert find_cookie(f"sess={encoded}", "sess", decode=False) == encoded
    assert find_cookie(f"sess={encoded}", "sess") == SIGNED_ID


def test_v3_rejects_tampering_and_rotates_secrets() -> None:
    cookie = v3()
    payload, _, signature = SIGNED_ID.rpartition(".")
    for bad in [f"{payload}.{signature[:-1]}A", f"{payload[:-2]}.{signature}", payload, "", "%%%", "€.€"]:
        assert cookie.parse(f"sess={bad}") is None, bad
    rotated = create_cookie("sess", secrets=["s0", "s1"], format="remix-v3")
    verified = rotated.read(f"sess={SIGNED_ID}")
    assert verified is not None and verified.value == ID and verified.stale
    assert create_cookie("sess", secrets=["other"], format="remix-v3").parse(f"sess={SIGNED_ID}") is None


def test_v3_text_that_is_not_utf8_is_no_value() -> None:
    unsigned = create_cookie("sess", format="remix-v3")
    assert unsigned.parse("sess=/w==") is None  # base64 of b"\xff"


def test_v3_non_string_values_are_written_as_json_text() -> None:
    assert v3().parse(v3().serialize(42).split(";")[0]) == "42"
    assert v3().parse(v3().serialize(["x"]).split(";")[0]) == '["x"]'


def test_unknown_cookie_format_is_refused() -> None:
    with pytest.raises(ValueError, match="remix-v3"):
        create_cookie("sess", format="remix-v4")  # type: ignore[arg-type]


def test_v3_records_round_trip_with_flash() -> None:
    data = {"user": "ü", "list": [], "__flash_notice__": "hi", "__flash___": 1, "__flash": 2}
    raw = encode_v3(data)
    assert raw == '[{"user":"ü","list":[],"__flash":2},{"notice":"hi","":1}]'.encode()
    assert decode_v3(raw) == {
        "user": "ü",
        "list": [],
        "__flash": 2,
        "__flash_notice__": "hi",
        "__flash___": 1,
    }
    assert decode_v3(b"[null]") == {}
    assert decode_v3(b'[{"a":1}]') == {"a": 1}


@pytest.mark.parametrize(
    "raw", [b"{}", b"[]", b"[1,2]", b"[{},{},{}]", b'"x"', b"[{}, []]", b"nope", b"\xff"]
)
def test_v3_records_of_another_shape_are_corrupt(raw: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        decode_v3(raw)
