"""Supporter replies of known quality, written by us: the lower rungs of the quality ladders.

A measure of support quality (a simulated reward, a reward model, SR in evaluation) is only useful if
it ranks replies whose quality is known beforehand in the right order. Human replies from ESConv are
the upper rungs; these lists are the lower ones, shared by the reward-chain ladder and the evaluation
ladder so that both measure against the same replies.

- ``DISMISSIVE_REPLIES`` brush the seeker off: minimising, changing the subject or leaving. Any
  measure of support must score them below a human supporter's reply.
- ``GENERIC_REPLIES`` are bland empathy that fits every message and engages with none: polite, but
  no better than that.
"""

from __future__ import annotations

DISMISSIVE_REPLIES = (
    "Just get over it.",
    "Okay. Anyway, I have to go.",
    "Everyone has problems, you know. Yours aren't special.",
    "That's not a big deal. Stop worrying about it.",
    "You're overreacting.",
    "I don't really want to hear about this.",
    "Whatever. It'll sort itself out.",
    "Can we talk about something else? This is boring.",
    "Other people have it much worse than you.",
    "Well, that's your problem, not mine.",
    "Just stop thinking about it.",
    "I'm busy right now. Talk later.",
)

GENERIC_REPLIES = (
    "I'm sorry to hear that.",
    "That sounds hard.",
    "I understand how you feel.",
    "That must be difficult for you.",
    "I see. Thank you for sharing that.",
    "I hope things get better for you soon.",
    "It's okay to feel that way.",
    "That sounds really tough.",
    "I can imagine how you feel.",
    "You are not alone in this.",
)
