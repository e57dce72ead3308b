"""Local generation with transformers: a model directory or a named model (``smollm2``), an
optional PEFT adapter, CPU or GPU through ``device_map``, ``n`` samples per prompt in one
batched ``generate`` call, stop sequences, a seed, cancellation and a wall-clock limit.

Loaded models are kept per (path, adapter, device map, dtype) for the life of the process, so
the describer, evaluation and the model server share one copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.errors import ConfigError, ModelError
from bactrian.models.base import (
    BackendBase,
    Cancelled,
    CancelToken,
    Completion,
    Messages,
    ModelBackend,
    ModelConfig,
    Sampling,
    TextStream,
)
from bactrian.models.smollm2 import ensure_checkpoint

INSTALL_HINT = "pip install 'bactrian[models]' (torch, transformers, accelerate, gguf, peft)"


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    lock: threading.Lock


_CACHE: dict[tuple[str, str, str, str], _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def resolve_path(path: str) -> Path:
    """``builtin:smollm2`` → the converted checkpoint (converted on first use); a directory
    → itself (it must hold a transformers checkpoint)."""
    if path == "builtin:smollm2":
        return ensure_checkpoint()
    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise ConfigError(
            f"{p} is not a transformers model directory (no config.json). Point [models.NAME] "
            "path at a directory written by save_pretrained, or use the built-in `smollm2`."
        )
    return p


def set_threads(threads: int) -> None:
    """Set torch's CPU threads (process-wide) when ``threads`` > 0."""
    if threads <= 0:
        return
    try:
        import torch
    except ImportError as exc:
        raise ConfigError(
            f"The local backend needs torch and transformers ({exc}): {INSTALL_HINT}."
        ) from None
    torch.set_num_threads(threads)


def load(path: str, adapter: str = "", device_map: str = "cpu", dtype: str = "float32") -> _Loaded:
    key = (path, adapter, device_map, dtype)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ConfigError(
                f"The local backend needs torch and transformers ({exc}): {INSTALL_HINT}."
            ) from None
        directory = resolve_path(path)
        torch_dtype = {
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }.get(dtype)
        if torch_dtype is None:
            raise ConfigError(f"dtype {dtype!r} is not one of float32, bfloat16, float16.")
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(directory), dtype=torch_dtype, device_map=device_map or None
        )
        if adapter:
            try:
                from peft import PeftModel
            except ImportError:
                raise ConfigError(f"A PEFT adapter needs peft: {INSTALL_HINT}.") from None
            if not Path(adapter).expanduser().is_dir():
                raise ConfigError(f"Adapter directory {adapter} does not exist.")
            model = PeftModel.from_pretrained(model, str(Path(adapter).expanduser()))
        model.eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        loaded = _Loaded(model, tokenizer, threading.Lock())
        _CACHE[key] = loaded
        return loaded


def _cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class TransformersBackend(BackendBase):
    name = "transformers"

    def __init__(
        self,
        path: str,
        *,
        adapter: str = "",
        device_map: str = "cpu",
        dtype: str = "float32",
        model_id: str = "",
        default_sampling: Sampling | None = None,
    ) -> None:
        self._loaded = load(path, adapter, device_map, dtype)
        self.model_id = model_id or Path(path).name
        self.default_sampling = default_sampling or Sampling()

    @classmethod
    def from_config(cls, config: ModelConfig) -> TransformersBackend:
        set_threads(config.threads)
        return cls(
            config.path,
            adapter=config.adapter,
            device_map=config.device_map,
            dtype=config.dtype,
            model_id=config.name or config.model,
            default_sampling=config.sampling(),
        )

    @property
    def tokenizer(self) -> Any:
        return self._loaded.tokenizer

    @property
    def model(self) -> Any:
        return self._loaded.model

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def _inputs(self, messages: Messages | str) -> Any:
        if isinstance(messages, str):  # a raw prompt (/v1/completions)
            return self.tokenizer(messages, return_tensors="pt").to(self.model.device)
        try:
            enc = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelError(
                f"Cannot lay out these messages with the model's chat template: {exc}"
            ) from None
        return enc.to(self.model.device)

    def _gen_kwargs(self, sampling: Sampling, cancel: CancelToken, n: int) -> dict[str, Any]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return cancel.cancelled

        sample = sampling.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "do_sample": sample,
            "num_return_sequences": n if sample else 1,
            "pad_token_id": self.tokenizer.pad_token_id,
            "stopping_criteria": StoppingCriteriaList([_Cancel()]),
        }
        if sample:
            kwargs["temperature"] = sampling.temperature
            kwargs["top_p"] = sampling.top_p
        else:  # greedy: no sampling knobs (transformers warns about them otherwise)
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            kwargs["stop_strings"] = list(sampling.stop)
            kwargs["tokenizer"] = self.tokenizer
        if sampling.timeout_s:
            kwargs["max_time"] = float(sampling.timeout_s)
        return kwargs

    def generate(
        self,
        messages: Messages,
        sampling: Sampling | None = None,
        *,
        n: int = 1,
        cancel: CancelToken | None = None,
    ) -> list[Completion]:
        return self._generate(messages, sampling, n, cancel)

    def generate_text(
        self,
        prompt: str,
        sampling: Sampling | None = None,
        *,
        n: int = 1,
        cancel: CancelToken | None = None,
    ) -> list[Completion]:
        """Complete a raw prompt (no chat template)."""
        return self._generate(prompt, sampling, n, cancel)

    def _generate(
        self,
        messages: Messages | str,
        sampling: Sampling | None,
        n: int,
        cancel: CancelToken | None,
    ) -> list[Completion]:
        import torch

        sampling = sampling or self.default_sampling
        cancel = cancel or CancelToken()
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}.")
        cancel.check()
        enc = self._inputs(messages)
        prompt_len = int(enc["input_ids"].shape[1])
        kwargs = self._gen_kwargs(sampling, cancel, n)
        start = time.monotonic()
        with self._loaded.lock, torch.no_grad():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            out = self.model.generate(**enc, **kwargs)
        latency = time.monotonic() - start
        if cancel.cancelled:
            raise Cancelled("The generation was cancelled.")
        eos = self._eos_ids()
        completions = []
        for row in out:
            new = row[prompt_len:].tolist()
            n_tokens = len(new)
            for k, tok in enumerate(new):
                if tok in eos:
                    n_tokens = k + 1
                    break
            hit_eos = n_tokens < len(new) or (bool(new) and new[n_tokens - 1] in eos)
            text = self.tokenizer.decode(new[:n_tokens], skip_special_tokens=True)
            text, stopped = _cut_at_stop(text, sampling.stop)
            reason = "stop" if hit_eos or stopped else "length"
            if sampling.timeout_s and latency >= sampling.timeout_s and reason == "length":
                reason = "timeout"
            completions.append(
                Completion(
                    text=text,
                    usage={
                        "prompt_tokens": prompt_len,
                        "completion_tokens": n_tokens,
                        "total_tokens": prompt_len + n_tokens,
                    },
                    latency_s=latency / len(out),
                    model=self.model_id,
                    finish_reason=reason,
                )
            )
        while len(completions) < n:  # greedy: every sample is the same
            c = completions[0]
            completions.append(
                Completion(c.text, dict(c.usage), c.latency_s, c.model, None, c.finish_reason)
            )
        return completions

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        cfg = getattr(self.model, "generation_config", None)
        eos = getattr(cfg, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, list):
            ids.update(eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def _stream(
        self, messages: Messages, sampling: Sampling, cancel: CancelToken, result: TextStream
    ) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        cancel.check()
        enc = self._inputs(messages)
        prompt_len = int(enc["input_ids"].shape[1])
        timeout = sampling.timeout_s or 600.0
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout
        )
        kwargs = self._gen_kwargs(sampling, cancel, 1)
        holder: dict[str, Any] = {}

        def work() -> None:
            try:
                with self._loaded.lock, torch.no_grad():
                    if sampling.seed is not None:
                        torch.manual_seed(sampling.seed)
                    holder["out"] = self.model.generate(**enc, **kwargs, streamer=streamer)
            except BaseException as exc:  # surfaced to the reader below
                holder["error"] = exc
                streamer.end()

        start = time.monotonic()
        thread = threading.Thread(target=work, name="bactrian-generate", daemon=True)
        thread.start()
        ttft: float | None = None
        text, sent = "", 0
        hold = max((len(s) for s in sampling.stop), default=1) - 1
        stopped = finished = False
        try:
            for piece in streamer:
                if not piece:
                    continue
                if ttft is None:
                    ttft = time.monotonic() - start
                text += piece
                cut, stopped = _cut_at_stop(text, sampling.stop)
                if stopped:
                    text = cut
                    if len(text) > sent:
                        yield text[sent:]
                        sent = len(text)
                    break
                safe = len(text) - hold
                if safe > sent:
                    yield text[sent:safe]
                    sent = safe
            finished = True
        finally:
            if not finished:  # a stop sequence, or the reader went away: stop generating
                cancel.cancel()
            thread.join()
        if "error" in holder:
            raise ModelError(f"Generation failed: {holder['error']}")
        if not stopped and len(text) > sent:
            yield text[sent:]
        out = holder.get("out")
        n_tokens = int(out.shape[1]) - prompt_len if out is not None else 0
        reason = "stop"
        if cancel.cancelled and not stopped:
            reason = "cancelled"
        elif n_tokens >= sampling.max_tokens:
            reason = "length"
        result.completion = Completion(
            text=text,
            usage={
                "prompt_tokens": prompt_len,
                "completion_tokens": n_tokens,
                "total_tokens": prompt_len + n_tokens,
            },
            latency_s=time.monotonic() - start,
            model=self.model_id,
            ttft_s=ttft,
            finish_reason=reason,
        )


def factory(config: ModelConfig) -> ModelBackend:
    return TransformersBackend.from_config(config)
