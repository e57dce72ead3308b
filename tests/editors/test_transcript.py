"""The shared transcript (editors/transcript.json) is true of the real sidecar: replayed by a
bare Python client over the socket, every step matches. The editors' own replays (ERT, the
Neovim suite, VS Code's node tests) then test the clients against the same exchange."""

from __future__ import annotations

from tests.editors.conftest import Sidecar, transcript
from tests.editors.transcript import Mismatch, match, replay


def test_transcript_matches_the_real_sidecar(sidecar: Sidecar) -> None:
    assert replay(sidecar.socket, sidecar.workspace) == len(transcript()["steps"])


def test_match_rules_can_fail() -> None:
    env: dict[str, object] = {}
    match({"a": [1, "${save:x}"], "b": "${any}"}, {"a": [1, "v"], "b": 3, "c": 4}, env)
    assert env == {"x": "v"}
    for expected, actual in [
        ({"a": 1}, {"a": 2}),
        ({"a": 1}, {}),
        ([1, 2], [1]),
        ({"a": {"b": True}}, {"a": []}),
    ]:
        try:
            match(expected, actual, {})
        except Mismatch:
            continue
        raise AssertionError(f"{expected!r} matched {actual!r}")
