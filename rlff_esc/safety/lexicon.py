"""Explicit phrases: what people write when they say it plainly, and what a reply must never say.

The trained classifier (``classifier.py``) covers indirect wording; the lexicon is kept for the
explicit phrases and slang that are unambiguous whatever surrounds them, so that they are caught even
if the classifier's threshold moves. A hit inside a denial ("I'm not suicidal", "I would never hurt
myself") does not count: the classifier then decides. Texting shorthand and typos are written out
first when the message as written has no hit (``texting.py``: "im gona kil myslef").

All patterns are Python regular expressions, matched case-insensitively.
"""

from __future__ import annotations

import re

from rlff_esc.safety.texting import written_out

_PEOPLE = (r"(him|her|them|someone|somebody|people|everyone|(my|his|her) (wife|husband|partner|boyfriend|"
           r"girlfriend|son|daughter|kids?|child|children|baby|mom|mother|dad|father|brother|sister|boss|"
           r"roommate|neighbou?r|ex|step\w+|coworkers?|teacher|friends?|family))")

CRISIS = {
    "suicide": [
        r"\bkill(ing)? ?my ?self\b",
        r"\bsuicidal\b",
        r"\b(i|i'm|im|i've|ive|me)\b[^.!?]{0,40}\bsuicide\b",
        r"\bend(ing)? (my (own )?life|it all)\b",
        r"\btake my (own )?life\b",
        r"\b(want|wanna|wish|wishing) (to|i could|i was|i were) (die|be dead|dead)\b",
        r"\bwish i (was|were) dead\b",
        r"\bbetter off (dead|without me|if i (was|were|wasn'?t|weren'?t) (dead|gone|here|around|alive))\b",
        r"\b(don'?t|do not|no longer) want to (live|be alive|exist|wake up)\b",
        r"\bno (reason|point) (to|in) (live|living|going on|being alive|staying alive)\b",
        r"\bnot worth living\b",
        r"\b(overdose|od) on\b",
        r"\bend it (all|tonight|now|today|soon)\b",
        r"\b(miss|notice|care) (me )?if i (was|were|am|'m) gone\b",
        r"\bdone with (life|living|being alive)\b",
        r"\btake (all )?(of )?(my|the|those) (sleeping )?pills\b",
        r"\b(want|wish|hope)[^.!?]{0,30}\b(not|never) (to )?wake up\b",
        r"\bhang(ing)? ?my ?self\b",
        # slang, euphemisms and the spellings that dodge filters
        r"\bkms\b",
        r"\bun-?aliv(e|ing)\b",
        r"\boff(ing)? my ?self\b",
        r"\bk[i1!*]ll(ing)? ?my ?s[e3]lf\b",
        r"\bsu([1!*]c[i1!*]|ic[1!*])d(e|al)\b",
        r"\bsewer ?slid(e|ing)\b",
        r"\bself[- ]?delet(e|ing)\b",
        r"\bctb\b",
        r"\b(wanna|want to|going to|gonna|finna|about to|gotta) rope\b(?! (in|into|off|them|him|her|you|people|it))",
    ],
    "self_harm": [
        r"\b(cut|cutting|hurt|hurting|harm|harming|burn|burning|injure|injuring|punish|punishing) ?my ?self\b",
        r"\bself[- ]?harm",
        r"\b(started|start|stop) cutting\b",  # not "stopped": that is recovery
        r"\bcutting again\b",
        r"\b(cutting|cut|cuts|slit|slitting) (on )?my (wrists?|arms?|thighs?|legs?)\b",
        r"\bfresh cuts\b",
        # slang: "sh" for self-harm, "beans"/"styro" for how deep a cut went
        r"\b(sh|s/h) (urges?|scars?|wounds?|cuts?|again|relapse)\b",
        r"\b(relapsed? on|did|doing|urges? to|wanna|want to|need to|gonna|bout to) (sh|s/h|s\.h\.?)\b",
        r"\b(hit|to|into|reached|down to) (beans|styro)\b",
        r"\brelaps\w*\b[^.!?]{0,30}\b(cut(ting)?(?! (down|back|out|off))|self[- ]?harm\w*|burn(ed|ing)? ?my ?self)\b",
    ],
    "harm_to_others": [
        r"\b(want|wanna|going|gonna|plan|planning|thinking|think|urge|tempted|might)\b[^.!?]{0,20}\b(kill|hurt|"
        r"stab|shoot|strangle|murder|attack|poison|beat up)\b " + _PEOPLE + r"\b",
        r"\b(going|gonna) to use it on\b",
        r"\bshoot(ing)? up (the|my|our|this) (school|work|office|workplace|class|campus)\b",
        r"\bcatch(ing)? a body\b",
    ],
    "abuse": [
        r"\b(hits|beats|beat|punched|punches|slapped|slaps|kicked|kicks|choked|chokes|strangled|strangles|pushed|"
        r"shoved) (me|us)\b",
        r"\b(rap(ed|ing)|molest(ed|ing)|sexually (abused|assaulted))\b",
        r"\babus(es|ing|ed) me\b",
        r"\bthreaten(s|ed)? to (kill|hurt) (me|us|the kids|" + _PEOPLE + r")\b",
        r"\bgrabbed (me|my (throat|neck|hair))\b",
        r"\bforces? me to have sex\b",
        r"\bput hands on (me|us)\b",
    ],
}

# A crisis hit that lies inside one of these is a denial, not a disclosure.
DENIALS = [
    r"(\bnot|\bnever|n't|\bno longer)( (going to|gonna|want to|wanna|planning (to|on)|thinking (of|about)|thought "
    r"(of|about)|ever|be|been|feeling|feel|a danger to))* (suicidal|suicide|die|be dead|kill(ing)? ?my ?self|"
    r"hang(ing)? ?my ?self|take my (own )?life|kms|(hurt|harm)(ing)? ?my ?self|self[- ]?harm\w*|end(ing)? (my (own )?life|it all|anything)|"
    r"(hurt|kill|harm)(ing)? (anyone|anybody|" + _PEOPLE + r"))\b",
    r"\b(no|never had( any)?) (thoughts|plans?|urges?) (of|about|to) (suicide|killing myself|ending my (own )?life|"
    r"taking my (own )?life|harming myself|self[- ]?harm\w*|hurting (myself|anyone))\b",
]

# What a reply must never say: how to do it, or that one should.
UNSAFE_REPLY = [
    r"\b(lethal|fatal|deadly) (dose|amount)\b",
    r"\bhow (many|much) (pills|tablets|paracetamol|mg)\b",
    r"\b\d+ ?(mg|milligrams?|pills|tablets)\b",
    r"\b(hang|hanging) yourself\b",
    r"\b(cut|slit)(ting)? (your|the|deeper)( \w+)? (wrists?|veins?|throat)\b",
    r"\bnoose\b",
    r"\bcarbon monoxide\b",
    r"\b(you should|go ahead( and)?|why not|just|it'?s (ok|okay|fine) to) (kill|hurt|cut|harm|end|off) "
    r"(yourself|your (own )?life|him|her|them)\b",
    r"\bkill yourself\b",
    r"\bkys\b",
    r"\b(you'?d|you would|everyone would) be better off (dead|without you)\b",
    r"\b(no ?one|nobody) would (miss|care about) you\b",
]


def _compile(patterns: list[str]) -> list[re.Pattern]:
    return [re.compile(p, re.IGNORECASE) for p in patterns]


class Lexicon:
    """``crisis(text)`` → (category, pattern) of the first undenied hit; ``unsafe_reply(text)`` → the
    pattern a reply breaks, or None."""

    def __init__(self):
        self.crisis_patterns = [(category, p) for category, ps in CRISIS.items() for p in _compile(ps)]
        self.denials = _compile(DENIALS)
        self.reply_patterns = _compile(UNSAFE_REPLY)

    def crisis(self, text: str) -> tuple[str, str] | None:
        """The first undenied hit in ``text`` or, failing that, in it with texting shorthand and typos
        written out (``texting.written_out``)."""
        hit = self._crisis(text)
        plain = written_out(text)
        return hit if hit or plain == text else self._crisis(plain)

    def _crisis(self, text: str) -> tuple[str, str] | None:
        denied = [m.span() for d in self.denials for m in d.finditer(text)]
        for category, pattern in self.crisis_patterns:
            for m in pattern.finditer(text):
                if not any(start < m.end() <= end for start, end in denied):  # its key word is denied
                    return category, pattern.pattern
        return None

    def unsafe_reply(self, text: str) -> str | None:
        return next((p.pattern for p in self.reply_patterns if p.search(text)), None)
