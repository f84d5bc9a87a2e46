"""The one seed derivation: every seed of a sample (a candidate, a future, a turn, a re-sample, a critic
sample) is a hash of the run's seed and of what the sample is, so that results are the same on every
run, process and machine, and do not depend on which other samples shared a batch.
"""

from __future__ import annotations

import hashlib


def stable_int(*parts) -> int:
    """A 31-bit integer from a sha256 of the parts joined by ``|`` (unlike Python's ``hash``, the same
    in every process)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
