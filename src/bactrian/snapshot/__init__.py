"""Snapshotter: records a workspace's file tree and build status into a content-addressed
store kept outside the workspace."""
