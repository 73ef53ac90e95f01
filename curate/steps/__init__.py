"""Workspace-level steps: read the workspace's files, call the numerics, write contract files.

The CLI, the app and the pipelines all call these; the concept packages below them know nothing
about workspaces.
"""
