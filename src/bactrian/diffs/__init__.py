"""Multi-file unified diffs: parse, render, apply strictly and leniently, safely."""
