"""Sealed originals: per-face encryption for an authority key, the audit chain, k-of-n shares."""
