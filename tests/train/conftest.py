"""Training fixtures: a tiny Llama built from a config with a BPE tokenizer trained here on the
sample workspace's OCaml, and datasets mined from a real OCaml git repository (real ocamlc
stages for the CES)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.dataset.example import Example
from bactrian.dataset.splits import DatasetConfig, build_dataset, load_dataset
from bactrian.dataset.store import ExampleDB
from bactrian.mine.config import MineConfig
from bactrian.mine.mining import mine_vcs
from bactrian.sample.workspace import read_tree, workspace_path
from tests.evaluate.conftest import STAGES, make_repo

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def build_tiny_model(dest: Path, *, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden 32) and a byte-level BPE tokenizer (vocab 512) trained on the
    sample's OCaml sources, saved with save_pretrained into ``dest``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = list(read_tree(workspace_path()).values())
    corpus = [t for t in corpus if t.strip()]
    corpus += [
        "diff --git a/src/money.ml b/src/money.ml\n--- a/src/money.ml\n+++ b/src/money.ml\n"
        "@@ -1,3 +1,4 @@\n let add a b = a + b\n+let sub a b = a - b\n"
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(str(dest))
    fast.save_pretrained(str(dest))
    return dest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def resplit(ds: Path, split_of: dict[str, str] | str) -> Path:
    """Rewrite a dataset's splits (tests need every split from a two-commit repository)."""
    manifest, examples = load_dataset(ds)
    for ex in examples:
        ex.split = split_of if isinstance(split_of, str) else split_of.get(ex.id, ex.split)
    rows = [e.to_dict() for e in examples]
    (ds / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for split in ("train", "rl", "heldout"):
        (ds / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows if r["split"] == split)
        )
    manifest["counts"]["by_split"] = {
        s: sum(1 for e in examples if e.split == s) for s in {str(e.split) for e in examples}
    }
    (ds / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return ds


def mined_examples(tmp_path: Path) -> list[Example]:
    repo = make_repo(tmp_path / "repo")
    with ExampleDB() as db:
        mine_vcs(repo, "HEAD~2..HEAD", MineConfig(), db=db)
        examples = db.all()
    assert len(examples) == 2, [e.kind for e in examples]
    return examples


@pytest.fixture
def money_dataset(tmp_path: Path) -> Path:
    """Two examples (add Money.to_string, add Money.sub): one ``train``, one ``rl``."""
    examples = mined_examples(tmp_path)
    ds = tmp_path / "ds"
    build_dataset(ds, examples, DatasetConfig(heldout_fraction=0.0, rl_fraction=0.0))
    _, exs = load_dataset(ds)
    exs.sort(key=lambda e: e.created_at)
    return resplit(ds, {exs[0].id: "train", exs[1].id: "rl"})


def train_config_file(tmp_path: Path, **extra: object) -> Path:
    """A --config file: cheap real ocamlc stages for the CES, the tiny run's knobs."""
    lines = ["[train]"]
    for k, v in extra.items():
        lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[train.stages]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in STAGES.items()]
    path = tmp_path / "train.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
