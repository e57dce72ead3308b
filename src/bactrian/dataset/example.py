"""The one versioned example schema shared by mining, describing, datasets, training and eval.

    {id, source, kind (fix | change | vcs-part), context {files, diagnostics}, prompt,
     description, diff, base (tree reference), stats, created_at, split, schema_version}

``base`` says how to rebuild the tree the diff applies to:
``{"type": "snapshot", "store": DIR, "workspace": PATH, "snapshot": ID}`` or
``{"type": "git"|"hg", "repo": PATH, "rev": REV, "pre_diff": DIFF}`` (``pre_diff``: the earlier
parts of a split commit, applied on top of ``rev`` first).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bactrian.errors import MiningError

SCHEMA_VERSION = 1
KINDS = ("fix", "change", "vcs-part")


@dataclass
class Example:
    source: str
    kind: str
    diff: str
    context: dict[str, Any] = field(default_factory=lambda: {"files": {}, "diagnostics": []})
    prompt: str = ""
    description: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    split: str | None = None
    id: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"example kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.id:
            self.id = example_id(self.source, self.kind, self.diff, self.base)

    @property
    def diagnostics(self) -> list[dict[str, Any]]:
        return list(self.context.get("diagnostics", []))

    @property
    def files(self) -> dict[str, str]:
        return dict(self.context.get("files", {}))

    @property
    def workspace(self) -> str:
        """What splits group by: the workspace or repository the example came from."""
        return str(self.base.get("workspace") or self.base.get("repo") or self.source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        version = int(d.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise MiningError(
                f"example {d.get('id')} has schema_version {version}, newer than this "
                f"bactrian ({SCHEMA_VERSION}); upgrade bactrian to read it"
            )
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def example_id(source: str, kind: str, diff: str, base: dict[str, Any]) -> str:
    """Stable id from what the example is: same diff on the same base → same id. VCS examples
    use the content-derived ``base["key"]`` so git and Mercurial copies agree."""
    key = base.get("key") or json.dumps(base, sort_keys=True)
    h = hashlib.sha256(f"{kind}\0{key}\0{diff}".encode()).hexdigest()
    return f"{kind}-{h[:12]}"
