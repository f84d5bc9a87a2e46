"""Whether a message is English enough to screen: the lexicon and the classifier were written and
trained on English only, so other languages get a clear "not screened" signal rather than silence.

A message counts as not English when most of its letters are outside the Latin alphabet, or when it
has at least ``MIN_WORDS`` words and none of them is a common English function word (words that
are also common in other European languages, such as "no", "will", "me", "was", are not counted). Short messages
("kms", "help") are screened: there is too little to tell, and the lexicon may still catch them.
"""

from __future__ import annotations

import re

MIN_WORDS = 4
FUNCTION_WORDS = frozenset("""
my myself you your him his she her it its we us our they them their this that these those are
were be been being have has had do does did don't doesn't didn't can't cannot won't i'm im i've ive i'll
and but or if because than then just not never very really too of at by for with about against between
into through to from up down out over again what who when where why how all any some most much
can would should could might want feel like know think get got going gonna wanna anymore
""".split())


def is_english(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum("a" <= ch.lower() <= "z" for ch in letters) < 0.5 * len(letters):
        return False
    words = re.findall(r"[a-z']+", text.lower())
    return len(words) < MIN_WORDS or any(w in FUNCTION_WORDS for w in words)
