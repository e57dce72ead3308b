"""The library pieces without a server: framing, version checks, workspace paths, config."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bactrian.aid import protocol as P
from bactrian.aid.config import AidConfig, load_aid_config
from bactrian.aid.context import WorkspaceIndex
from bactrian.aid.metrics import line_edit_distance
from bactrian.aid.paths import AidError, Layout, ServerLock, private_dir, workspace_path
from bactrian.aid.toolloop import tool_calls
from bactrian.errors import ConfigError
from bactrian.models.scripted import ScriptedBackend, tokens_of
from bactrian.strategies import STRATEGIES, Strategy, get_strategy

messages = st.lists(
    st.dictionaries(
        st.text(max_size=8), st.text(max_size=40) | st.integers() | st.none(), max_size=4
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(msgs=messages, cuts=st.lists(st.integers(1, 50), max_size=30))
def test_frames_round_trip_whatever_the_chunking(
    msgs: list[dict[str, object]], cuts: list[int]
) -> None:
    data = b"".join(P.encode(m) for m in msgs)
    reader = P.FrameReader(1 << 20)
    out: list[object] = []
    pos = 0
    for c in [*cuts, len(data)]:
        reader.feed(data[pos : pos + c])
        pos += c
        out.extend(reader.messages())
    reader.feed(data[pos:])
    out.extend(reader.messages())
    assert out == msgs


def test_frame_errors_are_named() -> None:
    cases = [
        (b"Content-Length: 5000\r\n\r\n", P.FRAME_TOO_LARGE, "limit of 100 bytes"),
        (b"Content-Type: x\r\n\r\n{}", P.INVALID_REQUEST, "no Content-Length"),
        (b"Content-Length: 3\r\n\r\n{x}", P.PARSE_ERROR, "not UTF-8 JSON"),
        (b"garbage\r\n\r\n", P.INVALID_REQUEST, "Malformed frame header"),
        (b"Content-Length: 2\r\n\r\n\xff\xfe", P.PARSE_ERROR, "not UTF-8 JSON"),
    ]
    for raw, code, text in cases:
        r = P.FrameReader(100)
        r.feed(raw)
        with pytest.raises(P.FrameError) as err:
            list(r.messages())
        assert err.value.code == code and text in err.value.message
        assert r.dead


def test_requests_and_versions() -> None:
    assert P.parse_message({"jsonrpc": "2.0", "id": 1, "method": "status"}).method == "status"
    assert P.parse_message({"jsonrpc": "2.0", "method": "x"}).notification
    for bad in (
        [],
        3,
        {"id": 1, "method": "x"},
        {"jsonrpc": "2.0", "id": True, "method": "x"},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1]},
    ):
        with pytest.raises(P.RpcError):
            P.parse_message(bad)
    P.check_version("1.7")
    with pytest.raises(P.RpcError, match="speaks 1.0"):
        P.check_version("2.0")
    assert P.restarting().to_dict()["data"] == {"retryable": True, "retryAfterMs": 50}


def test_workspace_paths(tmp_path: Path) -> None:
    root = (tmp_path / "ws").resolve()
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.ml").write_text("x")
    (root / "up").symlink_to(tmp_path)
    (tmp_path / "secret").write_text("s")
    (root / "inside").symlink_to(root / "a")
    assert workspace_path(root, "a/f.ml") == "a/f.ml"
    assert workspace_path(root, str(root / "a" / "f.ml")) == "a/f.ml"
    assert workspace_path(root, "inside/f.ml") == "inside/f.ml"
    assert workspace_path(root, "up/ws/a/f.ml") == "up/ws/a/f.ml"  # a detour that stays inside
    for bad in ["../x", "/etc/passwd", "up/secret", "", "a/\0", "."]:
        with pytest.raises(P.RpcError) as err:
            workspace_path(root, bad)
        assert err.value.code == P.PATH_OUTSIDE_WORKSPACE


def test_private_dir_and_lock(tmp_path: Path) -> None:
    d = tmp_path / "loose"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    private_dir(d)
    assert (d.stat().st_mode & 0o777) == 0o700
    (tmp_path / "file").write_text("")
    with pytest.raises(AidError, match="not a directory"):
        private_dir(tmp_path / "file")
    layout = Layout(tmp_path / "run" / "aid.sock")
    (tmp_path / "run").mkdir()
    layout.prepare()
    a, b = ServerLock(layout), ServerLock(layout)
    assert a.try_acquire() and not b.try_acquire()
    layout.write_pid({"pid": 4242})
    with pytest.raises(AidError, match=r"pid 4242\) already serves"):
        b.acquire_or_fail()
    a.release()
    assert b.try_acquire()
    b.release()


def test_config_defaults_and_errors(tmp_path: Path) -> None:
    cfg = load_aid_config(tmp_path / "none.toml")
    assert cfg.model == "smollm2" and not cfg.experiments and not cfg.log_content
    bad = tmp_path / "bad.toml"
    bad.write_text("[aid]\nmodle = 'x'\n")
    with pytest.raises(ConfigError, match="Unknown setting"):
        load_aid_config(bad)
    bad.write_text("[aid]\nexperiment = 'nope'\n")
    with pytest.raises(ConfigError, match="no \\[aid.experiments.nope\\]"):
        load_aid_config(bad)


def test_scripted_backend_streams_and_cancels(tmp_path: Path) -> None:
    script = tmp_path / "s.toml"
    script.write_text(
        'cycle = true\n[[answers]]\ntext = "let x = 1"\n[[answers]]\ntext = "second"\n'
    )
    be = ScriptedBackend(script)
    stream = be.stream([{"role": "user", "content": "hi"}])
    assert list(stream) == tokens_of("let x = 1") == ["let", " ", "x", " ", "=", " ", "1"]
    assert stream.completion is not None and stream.completion.tokens_out == 7
    assert be.complete([{"role": "user", "content": "hi"}]).text == "second"
    script.write_text('[[answers]]\ntext = "a b c d"\ntoken_delay_s = 5\n')
    s2 = be.stream([{"role": "user", "content": "x"}])
    s2.cancel()
    assert (
        list(s2) == [] and s2.completion is not None and s2.completion.finish_reason == "cancelled"
    )
    script.write_text("[[answers]]\nnope = 1\n")
    with pytest.raises(ConfigError, match="needs a 'text'"):
        be.data()


def test_line_edit_distance() -> None:
    assert line_edit_distance("a\nb\nc\n", "a\nb\nc\n") == 0
    assert line_edit_distance("a\nb\n", "a\nx\nb\n") == 1
    assert line_edit_distance("a\nb\n", "a\nc\n") == 2


def test_tool_calls_come_from_the_strategy_unless_config_overrides() -> None:
    class ToolUsing(Strategy):
        tool_calls = 3

    # the built-in strategies keep prompts as in training: no tool loop unless asked
    assert all(get_strategy(n).tool_calls == 0 for n in STRATEGIES.names())
    assert tool_calls(AidConfig(), get_strategy()) == 0
    assert tool_calls(AidConfig(), ToolUsing()) == 3
    assert tool_calls(AidConfig(max_tool_calls=0), ToolUsing()) == 0
    assert tool_calls(AidConfig(max_tool_calls=2), get_strategy()) == 2


def test_workspace_index_refresh_sees_changes_in_unchanged_and_changed_dirs(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ws"
    for d in ("lib/a", "lib/b", "_build/x", ".git"):
        (root / d).mkdir(parents=True)
    (root / "lib/a/foo.ml").write_text("")
    (root / "lib/b/bar.mli").write_text("")
    (root / "lib/b/notes.txt").write_text("")
    (root / "_build/x/gen.ml").write_text("")
    (root / ".git/h.ml").write_text("")
    ix = WorkspaceIndex(root)
    assert ix.files() == ["lib/a/foo.ml", "lib/b/bar.mli"]
    old = time.time() - 10  # listings older than a second are trusted when the mtime holds
    for d in ("", "lib", "lib/a", "lib/b"):
        os.utime(root / d, (old, old))
    ix.refresh()
    (root / "lib/a/foo_test.ml").write_text("")  # changes lib/a's mtime
    (root / "lib/c").mkdir()  # changes lib's mtime
    (root / "lib/c/baz.ml").write_text("")
    (root / "lib/b/bar.mli").unlink()
    ix.refresh()
    assert ix.files() == ["lib/a/foo.ml", "lib/a/foo_test.ml", "lib/c/baz.ml"]
    assert ix.with_stem("lib/a/foo.mli") == ["lib/a/foo.ml", "lib/a/foo_test.ml"]
