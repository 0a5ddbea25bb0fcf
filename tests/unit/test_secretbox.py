"""Encryption at rest of API-key secrets."""

from __future__ import annotations

import pathlib
import stat

import pytest

from cumulo.errors import CumuloError
from cumulo.secretbox import SecretBox, generate_key

PLAIN = "s3cr3t-Key-for-cumulo-ü"


def test_round_trip() -> None:
    box = SecretBox.from_key(generate_key())
    assert box.decrypt(box.encrypt(PLAIN)) == PLAIN
    assert box.decrypt(box.encrypt("")) == ""


def test_the_ciphertext_hides_the_plain_text() -> None:
    box = SecretBox.from_key(generate_key())
    token = box.encrypt("AKIDplainsecretvalue")
    assert "AKIDplainsecretvalue" not in token
    assert "plainsecret" not in token
    assert box.encrypt("AKIDplainsecretvalue") != token, "each token has a fresh IV"


def test_the_key_file_is_created_private(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "secret.key"
    box = SecretBox.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert box.decrypt(box.encrypt(PLAIN)) == PLAIN
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"], "no temporary file left"


def test_the_same_file_reloads_the_same_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "secret.key"
    token = SecretBox.load_or_create(path).encrypt(PLAIN)
    content = path.read_bytes()
    assert SecretBox.load_or_create(path).decrypt(token) == PLAIN
    assert path.read_bytes() == content


def test_an_existing_key_is_used_as_is(tmp_path: pathlib.Path) -> None:
    key = generate_key()
    path = tmp_path / "secret.key"
    path.write_text(key + "\n")
    token = SecretBox.from_key(key).encrypt(PLAIN)
    assert SecretBox.load_or_create(path).decrypt(token) == PLAIN


def test_another_key_fails_with_a_clear_error(tmp_path: pathlib.Path) -> None:
    token = SecretBox.load_or_create(tmp_path / "node-a.key").encrypt(PLAIN)
    other = SecretBox.load_or_create(tmp_path / "node-b.key")
    with pytest.raises(CumuloError) as info:
        other.decrypt(token)
    assert info.value.code == "InternalError.SecretKey"
    assert "does not match the database" in info.value.message
    assert "key file" in info.value.message


def test_a_damaged_token_fails_with_the_same_error() -> None:
    box = SecretBox.from_key(generate_key())
    token = box.encrypt(PLAIN)
    with pytest.raises(CumuloError) as info:
        box.decrypt(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert info.value.code == "InternalError.SecretKey"


@pytest.mark.parametrize("content", [b"", b"not a key\n", b"\xff\xfe", b"A" * 43 + b"\n"])
def test_a_corrupt_key_file_fails_with_a_clear_error(
    tmp_path: pathlib.Path, content: bytes
) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(content)
    with pytest.raises(CumuloError) as info:
        SecretBox.load_or_create(path)
    assert info.value.code == "InternalError.SecretKey"
    assert str(path) in info.value.message
    assert path.read_bytes() == content, "a bad key file is never overwritten"


def test_a_bad_key_string_fails_with_a_clear_error() -> None:
    with pytest.raises(CumuloError) as info:
        SecretBox.from_key("too-short")
    assert info.value.code == "InternalError.SecretKey"
    assert "valid key" in info.value.message


def test_a_key_file_that_cannot_be_created_fails_with_a_clear_error(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "no-such-dir" / "secret.key"
    with pytest.raises(CumuloError) as info:
        SecretBox.load_or_create(path)
    assert info.value.code == "InternalError.SecretKey"
    assert str(path) in info.value.message


def test_a_key_path_that_is_a_directory_fails_with_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CumuloError) as info:
        SecretBox.load_or_create(tmp_path)
    assert info.value.code == "InternalError.SecretKey"


def test_a_key_file_readable_by_others_is_warned_about(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secret.key"
    path.write_text(generate_key())
    path.chmod(0o644)
    SecretBox.load_or_create(path)
    assert any("chmod 600" in record.getMessage() for record in caplog.records)


def test_when_two_starters_race_the_first_key_wins(tmp_path: pathlib.Path) -> None:
    from cumulo.secretbox import _create

    path = tmp_path / "secret.key"
    first, second = generate_key(), generate_key()
    _create(path, first)
    _create(path, second)  # lost the race: its key is dropped, not written over the first
    assert path.read_text().strip() == first
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
