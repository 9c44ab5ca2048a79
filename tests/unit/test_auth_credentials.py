"""The server's key pair: generation, the 0600 file, reuse, the environment override, usage text."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.auth import CREDENTIALS_FILENAME, Credentials, load_or_create, read_credentials, usage_text
from lamina.auth.credentials import generate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_with_mode_0600_and_aws_shape(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    creds, created = load_or_create(data_dir, None, None)
    assert created
    path = data_dir / CREDENTIALS_FILENAME
    assert mode(path) == 0o600
    assert re.fullmatch(r"LKIA[A-Z0-9]{16}", creds.access_key_id)
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", creds.secret_access_key)
    assert json.loads(path.read_text()) == {
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key,
    }
    # No temp file is left behind.
    assert [p.name for p in data_dir.iterdir()] == [CREDENTIALS_FILENAME]


def test_created_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create(tmp_path, None, None)
    finally:
        os.umask(old)
    assert mode(tmp_path / CREDENTIALS_FILENAME) == 0o600


def test_second_call_reuses_the_file(tmp_path: Path) -> None:
    first, created_first = load_or_create(tmp_path, None, None)
    second, created_second = load_or_create(tmp_path, None, None)
    assert (created_first, created_second) == (True, False)
    assert first == second
    assert read_credentials(tmp_path) == first


def test_generated_pairs_differ() -> None:
    assert generate() != generate()


def test_environment_pair_wins_and_nothing_is_written(tmp_path: Path) -> None:
    load_or_create(tmp_path, None, None)
    before = (tmp_path / CREDENTIALS_FILENAME).read_bytes()
    creds, created = load_or_create(tmp_path, "LKIAFROMENV000000000", "env-secret")
    assert creds == Credentials("LKIAFROMENV000000000", "env-secret") and not created
    assert (tmp_path / CREDENTIALS_FILENAME).read_bytes() == before

    fresh = tmp_path / "fresh"
    load_or_create(fresh, "LKIAFROMENV000000000", "env-secret")
    assert not fresh.exists()


@pytest.mark.parametrize(("key", "secret"), [("LKIAFROMENV000000000", None), (None, "env-secret")])
def test_only_one_of_the_pair_is_an_error(tmp_path: Path, key: str | None, secret: str | None) -> None:
    with pytest.raises(ValueError, match="LAMINA_ACCESS_KEY_ID") as info:
        load_or_create(tmp_path, key, secret)
    assert "env-secret" not in str(info.value)
    assert not (tmp_path / CREDENTIALS_FILENAME).exists()


def test_group_readable_file_is_fixed_to_0600(tmp_path: Path) -> None:
    creds, _ = load_or_create(tmp_path, None, None)
    path = tmp_path / CREDENTIALS_FILENAME
    path.chmod(0o644)
    again, created = load_or_create(tmp_path, None, None)
    assert again == creds and not created
    assert mode(path) == 0o600


def test_corrupt_file_names_the_path_but_not_the_content(tmp_path: Path) -> None:
    path = tmp_path / CREDENTIALS_FILENAME
    path.write_text('{"access_key_id": "LKIA", "secret_access_key": "sekrit-value"')  # truncated JSON
    with pytest.raises(ValueError) as info:
        load_or_create(tmp_path, None, None)
    assert str(path) in str(info.value) and "sekrit-value" not in str(info.value)

    path.write_text(json.dumps({"access_key_id": "LKIA", "secret_access_key": 42}))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_credentials(tmp_path)


def test_read_credentials_absent(tmp_path: Path) -> None:
    assert read_credentials(tmp_path) is None


def test_repr_and_str_hide_the_secret() -> None:
    creds = Credentials("LKIAEXAMPLE000000000", "the-very-secret-value")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "the-very-secret-value" not in text
        assert "LKIAEXAMPLE000000000" in text


def test_usage_text_hides_the_secret_and_its_commands_work(tmp_path: Path) -> None:
    weird = tmp_path / "dir with 'quotes' $HOME"
    creds, _ = load_or_create(weird, None, None)
    path = weird / CREDENTIALS_FILENAME
    text = usage_text(path, "http://127.0.0.1:9000")
    assert creds.secret_access_key not in text
    assert f"export AWS_ACCESS_KEY_ID={creds.access_key_id}" in text
    assert "aws --endpoint-url http://127.0.0.1:9000 lambda list-functions" in text
    assert 'eval "$(lamina credentials --export)"' in text
    assert "AWS_DEFAULT_REGION=us-east-1" in text

    # The export lines, run by a real shell, yield the real pair.
    exports = "\n".join(line.strip() for line in text.splitlines() if line.strip().startswith("export "))
    script = exports.replace("python3 -c", f"{sys.executable} -c")
    out = subprocess.run(
        ["sh", "-c", script + '\nprintf "%s\\n%s\\n" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out == [creds.access_key_id, creds.secret_access_key]


def test_usage_text_without_a_readable_file(tmp_path: Path) -> None:
    text = usage_text(tmp_path / "missing.json", "http://localhost:9000", region="eu-west-1")
    assert "AWS_ACCESS_KEY_ID=" in text and "AWS_DEFAULT_REGION=eu-west-1" in text
