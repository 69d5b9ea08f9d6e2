"""Offline tools for partition directories: dump, verify, recover, reindex."""
