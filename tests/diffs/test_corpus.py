"""The corpus of model-style diffs in ``tests/diffs/corpus/``: each case states the rung the
lenient ladder must use for each hunk (or the failure it must report), whether a strict apply
takes it, and the files after a lenient apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from bactrian.diffs import apply_patch, apply_to_files

CORPUS = Path(__file__).parent / "corpus"


def _content(lines: list[str], flags: list[str]) -> bytes:
    text = "".join(lines)
    if "noeol" in flags:
        text = text[:-1]
    if "crlf" in flags:
        text = text.replace("\n", "\r\n")
    return text.encode()


def load_case(path: Path) -> dict:
    case: dict = {"meta": {}, "files": {}, "want": {}, "gone": [], "diff": ""}
    sections: list[tuple[list[str], list[str]]] = []
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("=== "):
            sections.append((line[4:].split(), []))
        else:
            sections[-1][1].append(line)
    for head, body in sections:
        kind = head[0]
        if kind == "meta":
            for line in body:
                key, _, value = line.partition(":")
                case["meta"][key.strip()] = value.strip()
        elif kind == "diff":
            case["diff"] = "".join(body)
        elif kind == "file":
            case["files"][head[1]] = _content(body, head[2:])
        elif kind == "want":
            case["want"][head[1]] = _content(body, head[2:])
        elif kind == "gone":
            case["gone"].append(head[1])
    return case


CASES = sorted(CORPUS.glob("*.case"))


def test_corpus_is_there() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_case(path: Path, tmp_path: Path) -> None:
    case = load_case(path)
    expect = case["meta"]["lenient"]
    out, result = apply_to_files(case["files"], case["diff"], lenient=True)
    rungs = [h.rung for f in result.files for h in f.hunks]
    if expect.startswith("fail"):
        assert not result.ok, rungs
        needle = expect.partition(":")[2].strip()
        assert needle in " ".join(result.errors()), result.errors()
        assert out == case["files"]
    else:
        assert result.ok, result.summary()
        assert rungs == [r.strip() for r in expect.split(",")]
        for p, want in case["want"].items():
            assert out.get(p) == want, (p, out.get(p))
        for p in case["gone"]:
            assert p not in out
    _, strict = apply_to_files(case["files"], case["diff"])
    assert strict.ok == (case["meta"]["strict"] == "ok"), strict.summary()
    # the same on disk, through the directory API
    for p, data in case["files"].items():
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(data)
    disk = apply_patch(tmp_path, case["diff"], lenient=True)
    assert disk.ok == result.ok
    got = {
        q.relative_to(tmp_path).as_posix(): q.read_bytes()
        for q in tmp_path.rglob("*")
        if q.is_file()
    }
    assert got == out
