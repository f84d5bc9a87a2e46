"""Texting shorthand and typos written out, so that "im gona kil myslef 2nite" is screened like
"i'm gonna kill myself tonight": the lexicon's patterns would miss it, and MiniLM cuts unknown words
into pieces that carry little meaning.

Two steps, both per word and both leaving every other character as it was:

* common shorthand (``SHORTHAND``: "u", "rn", "2nite", "b4", "wud", ...), written out;
* a word MiniLM's vocabulary does not know that is one edit (a letter left out, added, changed, or two
  swapped) from a word in ``KEY_WORDS`` (those the detectors need: "myself", "suicide", "pills", ...)
  becomes that word. This step never changes a word MiniLM knows ("willing" is not "killing"), nor one of
  fewer than four letters.

Both detectors see the written-out text as well as the original (a hit on either counts).
"""

from __future__ import annotations

import re
from functools import lru_cache

SHORTHAND = {
    "u": "you", "ur": "your", "rn": "right now", "atm": "at the moment", "b4": "before", "w/o": "without",
    "2day": "today", "2nite": "tonight", "2night": "tonight", "tnite": "tonight", "tonite": "tonight",
    "tnight": "tonight", "2nyt": "tonight", "tmrw": "tomorrow", "tmr": "tomorrow", "2moro": "tomorrow",
    "2morrow": "tomorrow", "tomoro": "tomorrow", "nite": "night", "wen": "when", "wat": "what", "wut": "what",
    "cuz": "because", "coz": "because", "bc": "because", "abt": "about", "bout": "about", "evry": "every",
    "evry1": "everyone", "every1": "everyone", "any1": "anyone", "ne1": "anyone", "some1": "someone",
    "no1": "no one", "noone": "no one", "pls": "please", "plz": "please", "im": "i'm", "ive": "i've",
    "dont": "don't", "cant": "can't", "didnt": "didn't", "doesnt": "doesn't", "isnt": "isn't",
    "wasnt": "wasn't", "wouldnt": "wouldn't", "idc": "i don't care", "idk": "i don't know",
    "idw": "i don't want", "wud": "would", "wld": "would", "cud": "could", "cld": "could", "shud": "should",
    "hav": "have", "hve": "have", "jst": "just", "jus": "just", "nvr": "never", "ovr": "over", "rly": "really",
    "rlly": "really", "sry": "sorry", "soz": "sorry", "luv": "love", "bak": "back", "b": "be", "r": "are",
    "wnt": "want", "wana": "wanna", "wna": "wanna", "gona": "gonna", "gna": "gonna", "gnna": "gonna",
    "kil": "kill", "kll": "kill", "ded": "dead", "dei": "die", "lyf": "life", "lyfe": "life",
    "skool": "school", "tho": "though", "thru": "through", "w": "with", "n": "and", "lst": "last",
}

KEY_WORDS = """
myself yourself himself herself suicide suicidal kill killing killed die dying dead death alive life living
anymore tonight tomorrow goodbye everyone everybody anyone nobody without pills tablets overdose rope
hanging hang jump jumping bridge cutting cut blade razor wrists thighs burned burning hurt hurting harm
harming scars relapsed stab shoot choked strangle punched beats drunk stepdad boyfriend girlfriend husband
school knife going want sleep never again tired thinking ending planning ready sorry really every night
""".split()


def _edits1(word: str) -> set[str]:
    """Every string one edit from ``word`` (deletion, transposition, substitution, insertion)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return ({a + b[1:] for a, b in splits if b} | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            | {a + c + b[1:] for a, b in splits if b for c in letters} | {a + c + b for a, b in splits for c in letters})


@lru_cache(maxsize=1)
def _typos() -> dict[str, str]:
    """Misspelling → key word, for every one-edit misspelling of a key word of four letters or more
    (a misspelling two key words share goes to neither)."""
    found: dict[str, set[str]] = {}
    for key in KEY_WORDS:
        if len(key) >= 4:
            for typo in _edits1(key) - {key}:
                found.setdefault(typo, set()).add(key)
    return {typo: keys.pop() for typo, keys in found.items() if len(keys) == 1}


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    """The whole words MiniLM knows (its WordPiece vocabulary); empty when the model is not installed,
    and then only ``SHORTHAND`` applies."""
    try:
        from rlff_esc.llm.embedded import minilm_path

        lines = (minilm_path() / "vocab.txt").read_text(encoding="utf-8").split()
    except Exception:  # noqa: BLE001 - no model installed: shorthand only
        return frozenset()
    return frozenset(w for w in lines if w.isalpha())


def _fix(word: str) -> str:
    lower = word.lower()
    if lower in SHORTHAND:
        return SHORTHAND[lower]
    vocabulary = _vocabulary()
    if len(lower) >= 4 and vocabulary and lower not in vocabulary and lower in _typos():
        return _typos()[lower]
    return word


def written_out(text: str) -> str:
    """``text`` with shorthand and one-edit typos of key words written out (the same text when none)."""
    return re.sub(r"[A-Za-z0-9/]+", lambda m: _fix(m.group(0)), text)
