"""The file store shares a directory with Remix's own ``createFileSessionStorage`` when asked
(``remix_ids=True``): the real npm package (tests/node/cookie) writes and reads beside us."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from websession import ConfigurationError, create_cookie, create_file_session_storage, open_store
from websession.stores.file import FileStore

NODE_PROJECT = Path(__file__).parent.parent / "node" / "cookie"
SECRETS = ["s3cret"]


def remix(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (NODE_PROJECT / "node_modules").is_dir():
        pytest.fail(
            "Node.js and the npm packages in tests/node/cookie are needed; "
            "run `python3 scripts/test.py`, which installs them"
        )
    result = subprocess.run(
        [node, "file_storage.mjs"],
        cwd=NODE_PROJECT,
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome: list[dict[str, Any]] = json.loads(result.stdout)
    return outcome


def shared(dir: Path, **options: Any) -> Any:
    cookie = create_cookie("__session", secrets=SECRETS, max_age=3600)
    return create_file_session_storage(dir=dir, cookie=cookie, remix_ids=True, **options)


def pair(set_cookie: str | None) -> str:
    assert set_cookie is not None
    return set_cookie.split(";")[0]


def test_a_session_remix_wrote_is_read_changed_and_handed_back(tmp_path: Path) -> None:
    [made] = remix(
        [{"dir": str(tmp_path), "secrets": SECRETS, "set": {"user": "ada", "n": 1}, "commit": True}]
    )
    storage = shared(tmp_path)
    session = storage.get_session(pair(made["setCookie"]))
    assert dict(session) == {"user": "ada", "n": 1}
    assert session.id is not None and len(session.id) == 16  # Remix's 64-bit ids, kept
    assert (tmp_path / session.id[:4] / session.id[4:]).is_file()  # Remix's own layout
    session["n"] = 2
    session.flash("notice", "saved by Python")
    header = storage.commit_session(session)
    assert pair(header) == pair(made["setCookie"])  # the same id, signed the same way
    [seen] = remix(
        [{"dir": str(tmp_path), "secrets": SECRETS, "header": pair(header), "get": ["user", "n", "notice"]}]
    )
    assert seen["id"] == session.id
    assert seen["read"] == {"user": "ada", "n": 2, "notice": "saved by Python"}


def test_a_session_python_wrote_is_read_and_changed_by_remix(tmp_path: Path) -> None:
    storage = shared(tmp_path)
    session = storage.get_session(None)
    session["user"] = "grace"
    header = pair(storage.commit_session(session))
    assert session.id is not None and len(session.id) == 16  # Remix reads no other id
    [seen] = remix(
        [
            {
                "dir": str(tmp_path),
                "secrets": SECRETS,
                "header": header,
                "get": ["user"],
                "set": {"cart": [1, 2]},
                "flash": {"notice": "from Remix"},
                "commit": True,
            }
        ]
    )
    assert seen["id"] == session.id and seen["read"] == {"user": "grace"}
    again = storage.get_session(pair(seen["setCookie"]))
    assert again.id == session.id
    assert again.get("notice") == "from Remix"  # a flash, read once
    assert dict(again) == {"user": "grace", "cart": [1, 2]}


def test_remix_ids_are_refused_unless_opted_in(tmp_path: Path) -> None:
    [made] = remix([{"dir": str(tmp_path), "secrets": SECRETS, "set": {"user": "ada"}, "commit": True}])
    cookie = create_cookie("__session", secrets=SECRETS, max_age=3600)
    default = create_file_session_storage(dir=tmp_path, cookie=cookie)
    session = default.get_session(pair(made["setCookie"]))
    assert session.is_new and len(session) == 0  # 64 bits: not accepted by default
    default.commit_session(session)
    assert shared(tmp_path).get_session(pair(made["setCookie"]))["user"] == "ada"  # left intact


def test_the_opt_in_validates_ids_as_strictly(tmp_path: Path) -> None:
    store = FileStore(tmp_path, remix_ids=True)
    good = "0123456789abcdef"
    assert store.is_valid_id(good) and store.is_valid_id("0" * 40)
    for bad in (
        "0123456789abcde",
        "0123456789abcdef0",
        "0123456789ABCDEF",
        "../../etc/passwd",
        "0123/56789abcdef",
        "",
        None,
        16,
    ):
        assert not store.is_valid_id(bad), bad
    assert len(store.new_id()) == 16


def test_the_opt_in_refuses_what_it_cannot_honour(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="creation time"):
        shared(tmp_path, absolute_timeout=60)
    with pytest.raises(ConfigurationError, match="names them by the id"):
        FileStore(tmp_path, remix_ids=True, storage_key_secret="k")


def test_the_url_form_opts_in(tmp_path: Path) -> None:
    storage = open_store(f"file://{tmp_path}?remix_ids=1&secrets=k")
    assert storage.store.remix_ids and len(storage.store.new_id()) == 16
    assert not open_store(f"file://{tmp_path}?secrets=k").store.remix_ids
