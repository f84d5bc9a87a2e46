"""Whether a message is English enough to screen: the lexicon and the classifier were written and
trained on English only, so other languages get a clear "not screened" signal rather than silence.

A message counts as not English when most of its letters are outside the Latin alphabet, or when it
has more common function words of Spanish, French, German, Italian, Portuguese or Dutch than of
English. Short messages that have neither ("kms", "help") count as English: there is too little to
tell, and the lexicon may still catch them. On ESConv train seeker turns, 2 of 13,205 are called
not English ("Yo", "Boston, MA signing off :)").

Both detectors still run on such a message (an English phrase inside it is still caught).
"""

from __future__ import annotations

import re

ENGLISH = frozenset("""
i me my myself you your yours he him his she her it its we us our they them their this that these those
am is are was were be been being have has had do does did don't doesn't didn't can't cannot won't i'm im
i've ive i'll i'd it's that's you're a an the and but or if because so than then just not no never very
really too of at by for with about into through to from in on up down out over again what who when where
why how all any some most much can will would should could might must want feel like know think get got
going gonna wanna anymore yes yeah ok okay thanks thank hi hello please sorry
""".split())
OTHER = frozenset("""
que el los las y es por para con una un mi yo muy pero más quiero estoy tengo nada porque como esta
je tu il elle nous vous les des est pas et une mon ma suis avec pour ne veux plus rien c'est j'ai
ich du er sie wir ihr nicht und ist das der ein eine mit mich mir bin auch aber noch mehr will nur
che sono per più io non mio voglio della
eu não você com uma muito quero estou
ik niet het een jij ben wil meer mijn
""".split())


def is_english(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum("a" <= ch.lower() <= "z" for ch in letters) < 0.5 * len(letters):
        return False
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.lower())
    return sum(w in OTHER for w in words) <= sum(w in ENGLISH for w in words)
