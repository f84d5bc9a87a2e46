"""Agents that play and judge conversations: seeker, supporter and critic, over any ChatBackend."""
