"""Code Evaluation Service: pre-warmed builds judge diffs stage by stage, sandboxed."""
