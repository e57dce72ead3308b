"""Mining (context, prompt, diff) examples from snapshot timelines and VCS history;
descriptions; leakage-safe datasets."""
