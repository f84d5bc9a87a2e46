"""Crisis safety: screening conversations and replies, and the safe-messaging reply (see layer.py)."""
