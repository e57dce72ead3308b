"""Secrets never enter the store: a corpus of secret files, named and unnamed, in git,
Mercurial and plain workspaces whose ``.gitignore`` re-includes them with negations; special
files and unreadable directories get their one log line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bactrian.secrets import secret_in_content, secret_name
from bactrian.snapshot import SnapshotConfig, open_store, take_snapshot
from bactrian.snapshot.config import DEFAULT_SECRET_PATTERNS

from .conftest import make_git, make_hg, make_plain, sh, write

PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
RSA = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0t\n"
AWS = (
    "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
)
GCP = (
    '{\n  "type": "service_account",\n  "project_id": "p",\n'
    '  "private_key_id": "0123",\n  "private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"\n}\n'
)

# path -> content, and a marker that must never reach the store
SECRETS: dict[str, tuple[str, str]] = {
    ".env": ("API_KEY=sk-live-123\n", "sk-live-123"),
    "config/.env.production": ("DB_PASSWORD=Zq8vT2mK9pW4xR7nB3cY\n", "Zq8vT2mK9pW4xR7nB3cY"),
    ".aws/credentials": (AWS, "wJalrXUtnFEMI"),
    "deploy_key": (PEM, "b3BlbnNzaC1rZXktdjEA"),
    "keys/server.pem": (RSA, "MIIEpAIBAAKCAQEAu1SU1"),
    "id_rsa_deploy": (RSA.replace("u1SU1", "u2SU2"), "u2SU2LfVLPHCozMxH2"),
    ".netrc": ("machine example.com login me password hunter2hunter2\n", "hunter2hunter2"),
    "ops/gcp.json": (GCP, "MIIEvQIBADANBgkqhkiG9w0"),
    "scripts/deploy.sh": (
        "#!/bin/sh\nexport STRIPE_SECRET_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ),
    "src/keys.ml": ('let api_key = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"\n', "ghp_16C7e42F"),
}
NEGATIONS = "*.log\n!.env\n!.env.*\n!*.pem\n!id_rsa*\n!.aws/\n!.netrc\n!deploy_key\n"
CLEAN = {
    "src/token.ml": "type token = INT of int | EOF\nlet token = Lexer.token\n",
    "src/config.ml": 'let api_key_header = "X-Api-Key"\nlet password_prompt = "Password: "\n',
}


def _all_object_bytes(store_root: Path) -> bytes:
    env = {**os.environ, "GIT_DIR": str(store_root / "repo.git")}
    return subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        env=env,
        capture_output=True,
        check=True,
    ).stdout


MAKERS: dict[str, Callable[[Path], Path]] = {"git": make_git, "hg": make_hg, "plain": make_plain}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_secret_corpus_never_reaches_the_store(
    kind: str, tmp_path: Path, cfg: SnapshotConfig, caplog: pytest.LogCaptureFixture
) -> None:
    ws = MAKERS[kind](tmp_path / "ws")
    take_snapshot(ws, config=cfg)  # a first snapshot, then the secrets arrive
    write(ws, {".gitignore": NEGATIONS, **{p: c for p, (c, _) in SECRETS.items()}, **CLEAN})
    if kind == "hg":
        write(ws, {".hgignore": "syntax: glob\n*.log\n"})
    with caplog.at_level(logging.WARNING):
        snap = take_snapshot(ws, config=cfg)
        files = set(open_store(ws, cfg).file_list(snap))
        write(ws, {"src/new.ml": "let x = 1\n"})  # another snapshot: still out, no new log
        caplog.clear()
        snap2 = take_snapshot(ws, config=cfg)
    store = open_store(ws, cfg)
    assert "src/new.ml" in store.file_list(snap2)
    assert ": secret (" not in caplog.text, "secret skips are logged once, not every snapshot"
    leaked = sorted(p for p in SECRETS if p in files)
    assert leaked == [], f"secret files stored: {leaked}"
    assert set(CLEAN) <= files and ".gitignore" in files
    blobs = _all_object_bytes(store.root)
    for path, (_, marker) in SECRETS.items():
        assert marker.encode() not in blobs, f"content of {path} reached the store"


def test_secret_skips_are_logged_and_win_over_negations(
    tmp_path: Path, cfg: SnapshotConfig, caplog: pytest.LogCaptureFixture
) -> None:
    ws = make_git(tmp_path / "ws")
    write(ws, {".gitignore": NEGATIONS, ".env": "API_KEY=sk-live-123\n", "deploy_key": PEM})
    with caplog.at_level(logging.WARNING):
        snap = take_snapshot(ws, config=cfg)
    assert ".env" not in open_store(ws, cfg).file_list(snap)
    assert "skipped .env: secret (name matches '.env'" in caplog.text
    assert "skipped deploy_key: secret (content contains a PEM private key)" in caplog.text


def test_a_secret_recorded_under_a_negation_is_removed_once_the_rules_apply(
    tmp_path: Path,
) -> None:
    """A store written before these rules (here: with no secret patterns at all) holds
    ``.env``; with the patterns back, the next snapshot drops it."""
    ws = make_git(tmp_path / "ws")
    write(ws, {".gitignore": "!.env\n", ".env": "HOME_DIR=/home/me\n"})
    loose = SnapshotConfig(probe="none", store_dir=tmp_path / "store", secret_patterns=[])
    first = take_snapshot(ws, config=loose)
    assert ".env" in open_store(ws, loose).file_list(first)
    strict = SnapshotConfig(probe="none", store_dir=tmp_path / "store")
    write(ws, {"src/shapes.ml": "let changed = 1\n"})
    snap = take_snapshot(ws, config=strict)
    assert ".env" not in open_store(ws, strict).file_list(snap)


def test_a_file_that_becomes_a_secret_is_dropped(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_plain(tmp_path / "ws")
    write(ws, {"src/settings.ml": 'let endpoint = "https://example.com"\n'})
    take_snapshot(ws, config=cfg)
    write(ws, {"src/settings.ml": 'let token = "xoxb-263594206564-2343594206574-FGqddMF8t"\n'})
    snap = take_snapshot(ws, config=cfg)
    assert "src/settings.ml" not in open_store(ws, cfg).file_list(snap)
    assert b"xoxb-263594206564" not in _all_object_bytes(open_store(ws, cfg).root)


def test_content_and_name_rules() -> None:
    for _, (content, _) in SECRETS.items():
        if content.startswith(("API_KEY", "machine")):
            continue  # caught by name only (.env / .netrc); short or word-like values
        assert secret_in_content(content.encode()), content
    for content in CLEAN.values():
        assert secret_in_content(content.encode()) is None, content
    assert secret_in_content(b"API_KEY=sk-live-123\n")
    assert secret_in_content(b'let password = "secret"\n') is None  # a word, not a token
    assert secret_in_content(b"let token = test_parse_option_value_2\n") is None
    pats = DEFAULT_SECRET_PATTERNS
    assert secret_name(".aws/credentials", pats) and secret_name("home/.ssh/id_ed25519", pats)
    assert secret_name("a/b/.env.local", pats) and secret_name("keys/x.pem", pats)
    assert secret_name("src/parser.ml", pats) is None
    assert secret_name("docs/aws/credentials.md", pats) is None


def test_fifos_get_one_log_line(
    tmp_path: Path, cfg: SnapshotConfig, caplog: pytest.LogCaptureFixture
) -> None:
    ws = make_plain(tmp_path / "ws")
    os.mkfifo(ws / "pipe")
    with caplog.at_level(logging.WARNING):
        take_snapshot(ws, config=cfg)
        assert caplog.text.count("skipped pipe: not a regular file") == 1
        write(ws, {"src/shapes.ml": "let a = 2\n"})
        os.mkfifo(ws / "src" / "later")
        take_snapshot(ws, config=cfg)
        write(ws, {"src/shapes.ml": "let a = 3\n"})
        take_snapshot(ws, config=cfg)
    assert caplog.text.count("skipped pipe: not a regular file") == 1
    assert caplog.text.count("skipped src/later: not a regular file") == 1


def test_unreadable_directory_gets_one_log_line(tmp_path: Path, cfg: SnapshotConfig) -> None:
    """Root reads everything: the snapshots run under bubblewrap with capabilities dropped,
    on a directory owned by another user with mode 0700."""
    import pwd

    if os.geteuid() != 0:  # as a normal user a chmod 000 directory is unreadable already
        closed_mode = 0o000
    else:
        closed_mode = 0o700
    nobody = pwd.getpwnam("nobody")
    ws = make_plain(tmp_path / "ws")
    write(ws, {"closed/inner.ml": "let i = 1\n"})
    if os.geteuid() == 0:
        os.chown(ws / "closed", nobody.pw_uid, nobody.pw_gid)
    (ws / "closed").chmod(closed_mode)
    code = (
        "import logging; logging.basicConfig(level=logging.WARNING)\n"
        "from pathlib import Path\n"
        "from bactrian.snapshot import SnapshotConfig, take_snapshot\n"
        f"cfg = SnapshotConfig(probe='none', store_dir=Path({str(cfg.store_dir)!r}))\n"
        f"ws = Path({str(ws)!r})\n"
        "take_snapshot(ws, config=cfg)\n"
        "(ws / 'src' / 'shapes.ml').write_text('let b = 1\\n')\n"
        "take_snapshot(ws, config=cfg)\n"
    )
    argv = ["bwrap", "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--cap-drop", "ALL"]
    if os.geteuid() != 0:
        argv = []
    try:
        proc = subprocess.run([*argv, sys.executable, "-c", code], capture_output=True, text=True)
    finally:
        (ws / "closed").chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("skipped directory closed") == 1, proc.stderr
    assert "Permission denied" in proc.stderr
    _ = sh  # the conftest helper is used by the makers
