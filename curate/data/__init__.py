"""Ingest: scanning folders into a manifest, safe decoding, the decoded-image cache."""
