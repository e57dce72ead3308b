"""Every exception bactrian raises on purpose.

Each message says what happened, the likely cause, and what to do. The CLI converts these to a
one-line error and a non-zero exit status at its edge; library code never calls ``sys.exit``.

    BactrianError
    ├── ConfigError                 bad config file, environment variable or option value
    │   └── UnknownNameError        a registry name that does not exist ("Did you mean …")
    ├── MissingExtraError           an optional extra (bactrian[ray], [serve], [data]) is missing
    ├── WorkspaceError              a workspace that is missing, unreadable or not a directory
    ├── StoreError                  the snapshot store cannot be opened, written or read
    │   ├── StoreLockedError        another daemon already records this workspace
    │   └── StoreCorruptError       fsck found missing or damaged objects
    ├── BuildProbeError             a build probe could not run its build at all
    ├── DiffError                   diffs: parse, apply and safety errors
    │   ├── DiffParseError          malformed diff text (names the line and what was expected)
    │   ├── DiffApplyError          a diff that does not apply
    │   │   └── DiffTimeoutError    placing its hunks ran past the time limit
    │   └── UnsafeDiffError         a diff that would write outside the tree, into .git, binary…
    ├── MiningError                 mining, describing and dataset errors
    ├── ModelError                  a model backend failed (HTTP error, bad reply, timeout)
    └── CESError                    Code Evaluation Service errors
        ├── BaseNotGreenError       a base that does not build/test green under its stages
        └── SandboxError            the sandbox cannot be set up
"""

from __future__ import annotations


class BactrianError(Exception):
    """Base class of every error bactrian raises on purpose."""


class ConfigError(BactrianError):
    """A config file, environment variable or option has a bad value."""


class UnknownNameError(ConfigError):
    """A name looked up in a registry does not exist."""


class MissingExtraError(BactrianError):
    """An optional dependency is not installed; the message names the extra to install."""


class WorkspaceError(BactrianError):
    """A workspace is missing, unreadable or not a directory."""


class StoreError(BactrianError):
    """The snapshot store cannot be opened, written or read."""


class StoreLockedError(StoreError):
    """Another process already holds the store's daemon lock."""


class StoreCorruptError(StoreError):
    """The store's objects or index are damaged."""


class BuildProbeError(BactrianError):
    """A build probe could not run the build at all (not: the build failed)."""


class DiffError(BactrianError):
    """Base class of diff errors."""


class DiffParseError(DiffError):
    """Diff text that cannot be parsed."""


class DiffApplyError(DiffError):
    """A diff that does not apply to the tree."""


class DiffTimeoutError(DiffApplyError):
    """Placing a diff's hunks took longer than its time limit (``DiffLimits.max_seconds``)."""


class UnsafeDiffError(DiffError):
    """A diff that would escape the tree, touch VCS metadata, or write binary/huge content."""


class MiningError(BactrianError):
    """Mining, describing or dataset building failed."""


class ModelError(BactrianError):
    """A model backend failed."""


class CESError(BactrianError):
    """Code Evaluation Service error."""


class BaseNotGreenError(CESError):
    """A CES base does not pass its own stage commands, so diffs against it cannot be judged."""


class NothingToJudgeError(BaseNotGreenError):
    """A base where no judging stage would run (no adapter command for typecheck, build or
    test): every diff would pass, so it is refused when it warms."""


class SandboxError(CESError):
    """The sandbox could not be set up."""
