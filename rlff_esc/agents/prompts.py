"""The prompts of the seeker and critic agents, written by us and kept in one place.

The paper gives no prompts, so these follow PPDPP's (Deng et al., 2024) set-up: the seeker is told
who it is (emotion, problem, situation) and to answer briefly as that person, in one of the
:data:`PERSONAS`; the critic is asked
PPDPP's question "has the seeker's issue been solved?" with its four answers. The supporter uses the
policy's own prompt (:mod:`rlff_esc.policy.reasoning`), because during simulation it stands in for the
policy. Every agent sees reply text only, never a ``<think>`` block.

Roles are mirrored for the seeker: its own past turns are ``assistant`` messages and the supporter's are
``user`` messages, so that a chat model answers *as* the seeker.
"""

from __future__ import annotations

from rlff_esc.agents.base import OPTIONS
from rlff_esc.data.schema import Profile, Turn, transcript

SEEKER_SYSTEM = (
    "You are role-playing a person who is looking for emotional support in an online chat. "
    "You feel {emotion_type} because of a problem with {problem_type}. Your situation: {situation}\n"
    "Stay in character as this person. Reply to the supporter's last message in one or two short, "
    "natural sentences about your own feelings and situation. You are the one who needs help: do not "
    "give advice, do not act as a counsellor, and do not write anyone else's lines or name labels."
)
# Simulated seekers are over-cooperative: they feel better whatever they are told. The resistant
# persona is the hard-to-help seeker, whom platitudes and dismissal do not help.
PERSONAS = {
    "cooperative": "",
    "resistant": (
        "\nYou are hard to help. Kind words alone do not make you feel better. If the supporter is "
        "dismissive, rude, changes the subject, or only says something generic like \"I'm sorry to hear "
        "that\", you feel unheard and say so, and you feel the same or worse. You feel a little better "
        "only when the supporter shows they understood your particular situation or asks about it."),
}

CRITIC_SYSTEM = (
    "You read conversations between a supporter and a seeker who came for emotional support, and you "
    "judge how the seeker feels now. The question is: has the seeker's issue been solved? Compared with "
    "the start of the conversation, does the seeker now feel worse, feel the same, feel better, or is "
    "the issue solved? Answer with exactly one of: " + ", ".join(OPTIONS) + "."
)
# The conversation comes last, so that the prompts for the K futures of one context share everything
# up to the candidate reply and a backend computes that part once (see rlff_esc.llm.prefix).
CRITIC_QUESTION = (
    "Conversation:\n{transcript}\n\n"
    "Has the seeker's issue been solved? Answer with exactly one of: " + ", ".join(OPTIONS) + "."
)


def recent(turns: list[Turn], max_turns: int | None) -> list[Turn]:
    """The last ``max_turns`` turns (all when None): long ESConv histories cost prompt time, and the
    recent turns carry what an agent needs to react."""
    return list(turns) if max_turns is None else list(turns[-max_turns:])


def seeker_messages(profile: Profile, turns: list[Turn], persona: str = "cooperative") -> list[dict]:
    messages = [{"role": "system", "content": SEEKER_SYSTEM.format(
        emotion_type=profile.emotion_type, problem_type=profile.problem_type,
        situation=profile.situation.strip()) + PERSONAS[persona]}]
    for t in turns:
        messages.append({"role": "assistant" if t.speaker == "seeker" else "user", "content": t.text})
    return messages


def critic_messages(turns: list[Turn]) -> list[dict]:
    return [{"role": "system", "content": CRITIC_SYSTEM},
            {"role": "user", "content": CRITIC_QUESTION.format(transcript=transcript(turns))}]
