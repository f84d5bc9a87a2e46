"""The reasoning format: parsing what small models really write, the format reward, reply extraction."""

import pytest

from rlff_esc.data.schema import Turn
from rlff_esc.policy.reasoning import (CLOSE, OPEN, compose, format_reward, parse, policy_prompt, reply_only,
                                       system_prompt, well_formed)


@pytest.mark.parametrize("text, thinking, reply, ok, reward", [
    ("<think>They feel sad.</think> I'm sorry to hear that.", "They feel sad.", "I'm sorry to hear that.", True, 1.0),
    ("<think>\n  They feel sad.\n</think>\n\nI'm sorry.", "They feel sad.", "I'm sorry.", True, 1.0),
    ("<think>They feel sad and I", "They feel sad and I", "", False, 0.0),            # unclosed: no reply
    ("I'm sorry to hear that.", "", "I'm sorry to hear that.", False, 0.0),           # no tags at all
    ("<think>a</think><think>b</think> reply", "a b", "reply", False, 0.5),           # repeated block
    ("Sure! <think>a</think> reply", "a", "reply", False, 0.5),                        # text before the tag
    ("<think>a</think>", "a", "", False, 0.0),                                         # nothing after the block
    ("<think></think> reply", "", "reply", False, 0.0),                                # empty reasoning
    ("</think> reply", "", "reply", False, 0.0),                                       # stray closing tag
    ("", "", "", False, 0.0),
])
def test_parse_and_reward(text, thinking, reply, ok, reward):
    parsed = parse(text)
    assert (parsed.thinking, parsed.reply, parsed.well_formed) == (thinking, reply, ok)
    assert format_reward(text) == reward
    assert reply_only(text) == reply
    assert OPEN not in reply_only(text) and CLOSE not in reply_only(text)


def test_compose_round_trips():
    text = compose(" The seeker feels lonely. ", " That sounds hard. ")
    assert text == "<think>The seeker feels lonely.</think> That sounds hard."
    assert parse(text).well_formed and reply_only(text) == "That sounds hard."


def test_no_reasoning_mode_rewards_plain_replies_only():
    assert well_formed("That sounds hard.", reasoning=False)
    assert format_reward("That sounds hard.", reasoning=False) == 1.0
    assert format_reward("<think>x</think> That sounds hard.", reasoning=False) == 0.0
    assert format_reward("   ", reasoning=False) == 0.0


def test_messages_map_speakers_and_system_prompt():
    history = [Turn(speaker="seeker", text="hi"), Turn(speaker="supporter", text="hello"),
               Turn(speaker="seeker", text="I lost my job")]
    messages = policy_prompt(history, True, None)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == system_prompt(True) and "<think>" in system_prompt(True)
    assert "<think>" not in system_prompt(False)
    assert policy_prompt(history, False, None)[0]["content"] == system_prompt(False)
