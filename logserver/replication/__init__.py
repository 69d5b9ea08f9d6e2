"""Replication: leader-side ISR and high-watermark tracking, follower fetching (DESIGN.md §5)."""
