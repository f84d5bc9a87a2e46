"""One seed derivation: the seeds that stored trajectories and fingerprints depend on keep their values."""

import hashlib

from rlff_esc.agents.critic import _seed as critic_seed
from rlff_esc.agents.seeker import resample_seed
from rlff_esc.evaluate.interactive import turn_seed
from rlff_esc.seeds import stable_int


def _sha31(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def test_stable_int_is_sha256_of_the_joined_parts():
    assert stable_int(13, "esconv:7|3", 2) == _sha31("13|esconv:7|3|2")
    assert 0 <= stable_int("x") < 2**31 and stable_int("x") != stable_int("y")


def test_every_derivation_goes_through_stable_int_with_unchanged_values():
    assert resample_seed(41, 0) == 41  # the first attempt keeps the caller's seed
    assert resample_seed(41, 2) == _sha31("41|resample|2")  # the seeker's re-samples, as before
    assert critic_seed("prompt text", 3) == _sha31("prompt text|3")  # the critic's samples, as before
    assert turn_seed(13, "esconv:1", 2, "seeker") == stable_int(13, "esconv:1", 2, "seeker")
