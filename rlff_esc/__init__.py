"""RLFF-ESC: emotional-support dialogue policies trained with future-oriented rewards."""

__version__ = "0.1.0"
