"""Model backends (shared by the describer, evaluation, training and the AID sidecar)."""
