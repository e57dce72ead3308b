"""Mining settings, section ``[mine]`` (``BACTRIAN_MINE_<FIELD>``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bactrian.config import load_section


@dataclass
class MineConfig:
    # filters
    max_changed_lines: int = 100
    max_files: int = 5
    exclude_globs: list[str] = field(
        default_factory=lambda: [
            "_build/*",
            "*/_build/*",
            "vendor/*",
            "*/vendor/*",
            "_opam/*",
            "third_party/*",
            "*.opam",
            "*.install",
            "*.lock",
            "*.min.js",
            "*_generated.ml",
            "*.pp.ml",
        ]
    )
    # files that are not code or build files (docs, changelogs, licences, CI): dropped from
    # diffs; an example left with no code is dropped as ``docs_only``
    drop_non_code: bool = True
    non_code_globs: list[str] = field(
        default_factory=lambda: [
            "*.md",
            "*.markdown",
            "*.rst",
            "*.adoc",
            "*.mld",
            "*.org",
            "CHANGES*",
            "CHANGELOG*",
            "Changes",
            "HISTORY*",
            "NEWS*",
            "README*",
            "LICENSE*",
            "LICENCE*",
            "COPYING*",
            "AUTHORS*",
            "CONTRIBUTORS*",
            "MAINTAINERS*",
            "CODEOWNERS",
            ".github/*",
            ".gitlab-ci.yml",
            ".gitlab/*",
            ".travis.yml",
            ".circleci/*",
            "appveyor.yml",
            ".appveyor.yml",
            "azure-pipelines.yml",
            ".cirrus.yml",
            "Jenkinsfile",
            ".gitignore",
            ".gitattributes",
            ".mailmap",
            ".editorconfig",
            ".merlin",
        ]
    )
    drop_whitespace_only: bool = True
    drop_comment_only: bool = True
    dedup_exact: bool = True
    dedup_near: bool = True
    max_context_files: int = 12  # 0 = no limit
    # episodes
    min_episode_s: float = 0.0
    max_fix_s: float = 3600.0
    max_change_s: float = 4 * 3600.0
    # VCS splitting
    split_large: bool = True
    # description
    describer: str = ""  # "" = llm when a model is configured, else deterministic


def load_mine_config(**overrides: Any) -> MineConfig:
    return load_section(MineConfig, "mine", overrides=overrides)
