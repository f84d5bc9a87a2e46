"""Dialogue data: one schema for ESConv and ExTES, splits, and the context builder."""

from rlff_esc.data.schema import Case, Context, Profile, Turn

__all__ = ["Case", "Context", "Profile", "Turn"]
