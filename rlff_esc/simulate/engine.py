"""The batched rollout engine: every trajectory of a batch advances together, one step at a time.

For a batch of (context, candidate, seed) items, each step is one batched call per role: the policy
proposes all candidates in one ``generate`` call, the critic judges all contexts, the seeker reacts to
all candidates, then ``horizon`` times the supporter answers all, the seeker answers all and the critic
judges all. A local backend decodes the batch together and computes once what the K futures of a
context share (their prompts up to the candidate; :mod:`rlff_esc.llm.prefix`); the HTTP backend sends
the batch concurrently (to several replicas, where vLLM's prefix cache does the same). PPDPP-style
code plays one conversation at a time instead, one call per turn; ``benchmarks/simulate_throughput.py``
compares the two.

The conversations all continue to the full horizon (no early stop when the critic sees success), so
that every record has the same length and ``final`` always means "after H exchanges".

Seeds: every item has its own seed; each agent turn derives its seed from it, the role and the turn,
so a trajectory does not depend on which other trajectories shared its batch (on the local backend).
Several futures of one candidate (``simulate.futures``) are items with the same context, candidate
and seed and another ``future`` index: the candidate is generated once from the item's seed, and the
turns after it use ``future_seed``, which differs per future.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rlff_esc.agents.base import Critic, Dialogue, Judgement
from rlff_esc.agents.seeker import SeekerAgent
from rlff_esc.agents.supporter import SupporterAgent
from rlff_esc.data.schema import Context, Turn
from rlff_esc.llm.base import ChatBackend, Generation, GenerationRequest
from rlff_esc.policy.reasoning import ParsedOutput, parse, policy_prompt
from rlff_esc.seeds import stable_int
from rlff_esc.simulate.rewards import future_rewards
from rlff_esc.simulate.store import trajectory_key


@dataclass
class Item:
    context: Context
    candidate: int
    seed: int
    future: int = 0
    reply: str | None = None  # a fixed candidate reply (the ladder's known-quality replies): the policy is not asked

    @property
    def key(self) -> str:
        return trajectory_key(self.context.id, self.candidate, self.seed, self.future)

    @property
    def candidate_id(self) -> tuple[str, int, int]:
        """What the futures of one candidate share: the candidate is generated once for all of them."""
        return self.context.id, self.candidate, self.seed

    @property
    def future_seed(self) -> int:
        """The seed of the turns after the candidate (the first future keeps the item's own seed)."""
        return self.seed if self.future == 0 else stable_int(self.seed, "future", self.future)


@dataclass
class Engine:
    policy: ChatBackend
    seeker: SeekerAgent
    supporter: SupporterAgent
    critic: Critic
    horizon: int = 3
    gamma: float = 0.9
    success_threshold: float = 0.5
    reasoning: bool = True  # the policy writes <think> first; only the reply goes on
    candidate_max_new_tokens: int = 128
    temperature: float = 0.9
    top_p: float = 0.95
    policy_history_turns: int | None = None
    settings: str = ""  # fingerprint stored in every record (see store.py)
    on_step: Callable[[str], None] | None = None  # told the name of each step, for a progress bar
    meters: list = field(default_factory=list)  # MeteredBackends of the roles, for tokens/s

    def _step(self, name: str) -> None:
        if self.on_step:
            self.on_step(name)

    def run(self, items: list[Item]) -> list[dict]:
        """Simulate the items together; returns one finished record per item, in order."""
        if not items:
            return []
        self._step("candidates")
        proposing = {it.candidate_id: it for it in items if it.reply is None}  # one per candidate, not per future
        proposed = dict(zip(proposing, self.policy.generate([GenerationRequest(
            messages=policy_prompt(it.context.history, self.reasoning, self.policy_history_turns),
            max_new_tokens=self.candidate_max_new_tokens, temperature=self.temperature, top_p=self.top_p,
            seed=it.seed) for it in proposing.values()]) if proposing else []))
        generations = [proposed[it.candidate_id] if it.reply is None else Generation(it.reply) for it in items]
        parsed = [parse(g.text) if it.reply is None else ParsedOutput("", it.reply, True)
                  for it, g in zip(items, generations)]

        self._step("critic 0")
        contexts = list({it.context.id: it.context for it in items}.values())
        baseline = dict(zip((c.id for c in contexts),
                            self.critic.judge([Dialogue(c.profile, list(c.history)) for c in contexts])))
        judgements: list[list[Judgement]] = [[baseline[it.context.id]] for it in items]
        turns = [list(it.context.history) + [Turn(speaker="supporter", text=p.reply)] for it, p in zip(items, parsed)]
        future: list[list[Turn]] = [[] for _ in items]
        resamples = [0] * len(items)

        def say(role: str, turn: int) -> None:
            dialogues = [Dialogue(it.context.profile, t) for it, t in zip(items, turns)]
            seeds = [stable_int(it.future_seed, role, turn) for it in items]
            if role == "seeker":
                said = self.seeker.respond_counted(dialogues, seeds)
                texts = said.texts
                for i, n in enumerate(said.resamples):
                    resamples[i] += n
            else:
                texts = self.supporter.respond(dialogues, seeds)
            for i, text in enumerate(texts):
                new = Turn(speaker=role, text=text)
                turns[i].append(new)
                future[i].append(new)

        def judge(turn: int) -> None:
            self._step(f"critic {turn}")
            for i, j in enumerate(self.critic.judge([Dialogue(it.context.profile, t) for it, t in zip(items, turns)])):
                judgements[i].append(j)

        self._step("seeker 1")
        say("seeker", 1)
        judge(1)
        for h in range(2, self.horizon + 2):
            self._step(f"supporter {h}")
            say("supporter", h)
            self._step(f"seeker {h}")
            say("seeker", h)
            judge(h)

        models = {"policy": self.policy.name, "seeker": self.seeker.name, "supporter": self.supporter.name,
                  "critic": self.critic.name}
        records = []
        for i, it in enumerate(items):
            scores = [j.score for j in judgements[i]]
            records.append({
                "key": it.key, "context_id": it.context.id, "case_id": it.context.case_id,
                "candidate": it.candidate, "seed": it.seed, "future_index": it.future,
                "raw_candidate": generations[i].text, "reasoning": parsed[i].thinking, "reply": parsed[i].reply,
                "well_formed": parsed[i].well_formed,
                "future": [{"speaker": t.speaker, "text": t.text} for t in future[i]],
                "critic": [{"turn": t, "score": j.score, "distribution": j.distribution, "invalid": j.invalid,
                            **({"raw": j.raw} if j.raw else {})} for t, j in enumerate(judgements[i])],
                "rewards": future_rewards(scores, self.gamma, self.success_threshold),
                "horizon": self.horizon, "models": models, "resamples": resamples[i],
                "settings": self.settings,
            })
        return records
