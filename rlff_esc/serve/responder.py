"""The one place that turns a conversation into the policy's reply, for the terminal chat, the server
and the chat page alike: chat messages → the policy's prompt (``policy_prompt``, the system prompt it
was trained with) → generation → the reply without its reasoning, with the safety layer around it.

Every user turn is screened: a conversation with a flagged turn is in safe mode and is never sent to
the policy (the reply is the layer's safe-messaging reply, a shorter follow-up after the first), and a
policy reply that gives a method or encourages harm is replaced as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rlff_esc.config import Config
from rlff_esc.data.schema import Turn
from rlff_esc.errors import RlffError
from rlff_esc.llm.base import ChatBackend, GenerationRequest, Message
from rlff_esc.policy.reasoning import parse, policy_prompt
from rlff_esc.safety.layer import SafetyFlag, SafetyLayer

log = logging.getLogger(__name__)


class ConversationError(RlffError):
    """A conversation the policy cannot answer (e.g. it does not end with the user's message)."""


class PromptTooLong(ConversationError):
    def __init__(self, tokens: int, limit: int):
        super().__init__(f"messages: the prompt is {tokens} tokens, more than the {limit} this server accepts; "
                         f"send fewer or shorter messages")
        self.tokens, self.limit = tokens, limit


@dataclass
class Reply:
    content: str  # what the person sees
    reasoning: str  # the policy's <think> part; empty for a safety reply or a policy without reasoning
    flag: SafetyFlag | None
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unscreened: list[int] = field(default_factory=list)  # user turns the safety layer could not screen


class Responder:
    """Answers batches of conversations (OpenAI-style messages: ``user`` is the seeker, ``assistant``
    the supporter). System messages from a client are ignored: the policy keeps its own system prompt,
    the one it was trained with."""

    def __init__(self, backend: ChatBackend, *, safety: SafetyLayer | None = None, reasoning: bool = True,
                 max_history_turns: int | None = None, temperature: float = 0.7, top_p: float = 0.95,
                 max_new_tokens: int = 160, max_prompt_tokens: int | None = None):
        self.backend, self.safety, self.reasoning = backend, safety, reasoning
        self.max_history_turns, self.max_prompt_tokens = max_history_turns, max_prompt_tokens
        self.defaults = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}

    @property
    def name(self) -> str:
        return self.backend.name

    def respond(self, conversations: list[list[Message]], *, seeds: list[int | None] | None = None,
                stop: list[str] | None = None, cancel=None, **settings) -> list[Reply]:
        """One reply per conversation; conversations not in safe mode are generated in one backend call.
        ``settings`` override ``temperature``, ``top_p`` and ``max_new_tokens``; ``cancel`` (a
        ``threading.Event``, for a :class:`~rlff_esc.serve.queue.BatchingQueue` backend) drops requests
        that have not started decoding when it is set."""
        histories = [to_history(c) for c in conversations]
        users = [[t.text for t in h if t.speaker == "seeker"] for h in histories]
        screens = self.safety.screen(users) if self.safety else [None] * len(histories)
        replies: list[Reply | None] = [
            Reply(self.safety.safe_reply(s.flag, s.follow_up(len(u))), "", s.flag, "stop", unscreened=s.unscreened)
            if s and s.flag else None for s, u in zip(screens, users)]
        todo = [i for i, r in enumerate(replies) if r is None]
        options = {**self.defaults, **{k: v for k, v in settings.items() if v is not None}}
        seeds = seeds or [None] * len(conversations)
        requests = [GenerationRequest(policy_prompt(histories[i], self.reasoning, self.max_history_turns),
                                      seed=seeds[i], stop=list(stop or []), **options) for i in todo]
        self._check_prompt_length(requests)
        outputs = (self.backend.generate(requests, **({"cancel": cancel} if cancel else {}))
                   if requests else [])
        parsed = [parse(g.text) for g in outputs]
        unsafe = self.safety.screen_replies([p.reply for p in parsed]) if self.safety else [None] * len(parsed)
        for i, g, p, bad in zip(todo, outputs, parsed, unsafe):
            unscreened = screens[i].unscreened if screens[i] else []
            replies[i] = (Reply(self.safety.safe_reply(bad), "", bad, "stop", g.prompt_tokens, g.completion_tokens,
                                unscreened) if bad else
                          Reply(p.reply, p.thinking, None, g.finish_reason, g.prompt_tokens, g.completion_tokens,
                                unscreened))
        return replies

    def _check_prompt_length(self, requests: list[GenerationRequest]) -> None:
        count = getattr(self.backend, "prompt_tokens", None)
        if not (self.max_prompt_tokens and count):
            return
        for r in requests:
            tokens = count(r.messages)
            if tokens > self.max_prompt_tokens:
                raise PromptTooLong(tokens, self.max_prompt_tokens)


def to_history(messages: list[Message]) -> list[Turn]:
    """Chat messages → seeker/supporter turns; the last one must be the seeker's (``user``)."""
    turns = []
    for n, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ConversationError(f"messages[{n}]: expected an object with 'role' and 'content'")
        role, text = m["role"], message_text(m.get("content"))
        if role in ("system", "developer"):
            continue
        if role not in ("user", "assistant"):
            raise ConversationError(f"messages[{n}].role: {role!r} is not supported (user, assistant, system)")
        if text.strip():
            turns.append(Turn(speaker="seeker" if role == "user" else "supporter", text=text))
    if not turns or turns[-1].speaker != "seeker":
        raise ConversationError("messages: the conversation must end with a non-empty user message")
    return turns


def message_text(content) -> str:
    """A message's text: a string, or the text parts of an OpenAI content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise ConversationError("message content must be a string or a list of text parts")


def build_responder(policy: str, config: Config, *, reasoning: bool | None = None,
                    backend: ChatBackend | None = None) -> Responder:
    """A responder for a policy folder or model name, with the config's safety and serving defaults."""
    if backend is None:
        from rlff_esc.llm.registry import load_local

        log.info("loading policy %s", policy)
        backend = load_local(config.models.policy, policy, batch_size=config.serve.max_batch)
    safety = SafetyLayer.from_config(config.serve.safety, base_dir=config.base_dir)
    if safety is None:
        log.warning("the safety layer is OFF (serve.safety.enabled: false): crisis messages get raw policy output")
    serve = config.serve
    return Responder(backend, safety=safety,
                     reasoning=config.policy.reasoning if reasoning is None else reasoning,
                     max_history_turns=config.policy.max_history_turns, temperature=serve.temperature,
                     top_p=serve.top_p, max_new_tokens=serve.default_max_tokens,
                     max_prompt_tokens=serve.max_prompt_tokens)
