"""The reasoning format, kept in one place: the policy writes ``<think>…</think>`` and then its reply.

Only the reply is ever shown to the seeker, the reward model, the evaluation and the user. The parser
is lenient with what small models produce: a missing closing tag, a repeated block, text before the
first tag. :func:`format_reward` scores how well an output follows the format (1.0 = exactly one
non-empty think block followed by a non-empty reply).

The template: the system prompt (:data:`SYSTEM_PROMPT`, plus :data:`REASONING_INSTRUCTION` when
reasoning is on) then the dialogue, seeker turns as ``user`` and supporter turns as ``assistant``,
rendered by the model's own chat template; the policy answers ``<think>reasoning</think> reply``
(:func:`compose`). Without reasoning (the ablation) it answers the reply alone and must not write tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rlff_esc.data.schema import Turn

OPEN, CLOSE = "<think>", "</think>"

SYSTEM_PROMPT = (
    "You are a warm, patient emotional supporter talking with someone who is going through a hard "
    "time. Listen, reflect their feelings, ask gentle questions and, when they are ready, offer "
    "practical suggestions. Keep each reply to one to three short sentences."
)
REASONING_INSTRUCTION = (
    " Before you reply, think briefly about how the person feels and which support strategy fits "
    "(question, reflection, reassurance, suggestion, ...) inside <think> and </think>, then write your "
    "reply after </think>."
)


@dataclass
class ParsedOutput:
    thinking: str
    reply: str
    well_formed: bool  # exactly one think block, closed, non-empty, with a non-empty reply after it


def system_prompt(reasoning: bool) -> str:
    return SYSTEM_PROMPT + (REASONING_INSTRUCTION if reasoning else "")


def history_window(history: list[Turn], max_turns: int | None) -> list[Turn]:
    """The last ``max_turns`` turns (all when None), starting at a seeker turn: prompts stay short, and
    the conversation the model reads opens with the person it answers, as chat templates expect."""
    if max_turns is None:
        return list(history)
    kept = list(history[-max_turns:])
    while len(kept) > 1 and kept[0].speaker != "seeker":
        kept = kept[1:]
    return kept


def policy_prompt(history: list[Turn], reasoning: bool, max_history_turns: int | None) -> list[dict]:
    """The policy's chat messages for a conversation that ends with a seeker turn: the one prompt the
    policy sees in the warm-up, GRPO, simulation, the held-out check, evaluation and serving.

    The seeker speaks as ``user``, the supporter as ``assistant``. The seeker's profile is not shown: a
    real supporter learns it only from the conversation."""
    messages = [{"role": "system", "content": system_prompt(reasoning)}]
    for t in history_window(history, max_history_turns):
        messages.append({"role": "user" if t.speaker == "seeker" else "assistant", "content": t.text})
    return messages


def parse(text: str) -> ParsedOutput:
    opens, closes = text.count(OPEN), text.count(CLOSE)
    if CLOSE in text:
        head, _, reply = text.rpartition(CLOSE)
        thinking = head.split(OPEN, 1)[1] if OPEN in head else head
        thinking = thinking.replace(OPEN, " ").replace(CLOSE, " ")
    elif OPEN in text:  # unclosed: everything after the tag is reasoning; there is no reply
        before, _, thinking = text.partition(OPEN)
        reply = before
    else:
        thinking, reply = "", text
    thinking, reply = _squash(thinking), _squash(reply.replace(OPEN, " "))
    well_formed = (opens == 1 and closes == 1 and text.strip().startswith(OPEN)
                   and bool(thinking) and bool(reply))
    return ParsedOutput(thinking=thinking, reply=reply, well_formed=well_formed)


def compose(thinking: str, reply: str) -> str:
    """The exact target layout the warm-up teaches: ``<think>thinking</think> reply``."""
    return f"{OPEN}{thinking.strip()}{CLOSE} {reply.strip()}"


def well_formed(text: str, reasoning: bool = True) -> bool:
    """Format compliance. With reasoning: one closed, non-empty think block, then a reply. Without:
    a non-empty reply and no think tag at all (the no-reasoning ablation must not leak tags)."""
    if reasoning:
        return parse(text).well_formed
    return bool(text.strip()) and OPEN not in text and CLOSE not in text


def reply_only(text: str) -> str:
    """What the listener sees: the text after the last ``</think>`` (or the text before an unclosed one)."""
    return parse(text).reply


def reply_of(text: str, reasoning: bool) -> str:
    """What the listener sees of a policy's output: :func:`reply_only` when the policy reasons
    (``policy.reasoning``), else the whole text."""
    return reply_only(text) if reasoning else text.strip()


def format_reward(text: str, reasoning: bool = True) -> float:
    """1.0 well formed; 0.5 a closed think block but extra tags or text before it; 0.0 otherwise.
    Without reasoning: 1.0 for a non-empty reply free of think tags, else 0.0."""
    if not reasoning:
        return float(well_formed(text, reasoning=False))
    parsed = parse(text)
    if parsed.well_formed:
        return 1.0
    if text.count(CLOSE) >= 1 and parsed.thinking and parsed.reply:
        return 0.5
    return 0.0


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
