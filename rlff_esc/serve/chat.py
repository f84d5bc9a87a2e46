"""The terminal chat: talk to a policy, with the safety layer on, ``/reset`` and ``/save FILE``.

The local backend does not decode token by token, so the reply is generated whole and then printed
word by word; the reasoning stays hidden unless ``show_thinking``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TextIO

from rlff_esc.serve.responder import Responder

HELP = "Commands: /reset (start over), /save FILE (JSON transcript), /help, /quit"


class ChatSession:
    """One conversation with a responder, kept as OpenAI-style messages (plus reasoning and flags)."""

    def __init__(self, responder: Responder):
        self.responder = responder
        self.messages: list[dict] = []

    def send(self, text: str, seed: int | None = None):
        reply = self.responder.respond([self._plain() + [{"role": "user", "content": text}]], seeds=[seed])[0]
        self.messages.append({"role": "user", "content": text})
        entry = {"role": "assistant", "content": reply.content}
        if reply.reasoning:
            entry["reasoning"] = reply.reasoning
        if reply.flag:
            entry["safety"] = reply.flag.to_dict()
        self.messages.append(entry)
        return reply

    def reset(self) -> None:
        self.messages = []

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        transcript = {"model": self.responder.name, "saved_at": datetime.now(timezone.utc).isoformat(),
                      "messages": self.messages}
        path.write_text(json.dumps(transcript, indent=2, ensure_ascii=False) + "\n")
        return path

    def _plain(self) -> list[dict]:
        return [{"role": m["role"], "content": m["content"]} for m in self.messages]


def chat_loop(responder: Responder, *, show_thinking: bool = False, read: Callable[[str], str] = input,
              out: TextIO = sys.stdout, word_delay: float = 0.03) -> ChatSession:
    """Read lines until /quit or end of input; returns the session (for tests and callers)."""
    session = ChatSession(responder)
    out.write(f"Talking to {responder.name}. {HELP}\n")
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return session
        if not line:
            continue
        command, _, arg = line.partition(" ")
        if command in ("/quit", "/exit"):
            return session
        if command == "/help":
            out.write(HELP + "\n")
        elif command == "/reset":
            session.reset()
            out.write("(conversation cleared)\n")
        elif command == "/save":
            if not arg.strip():
                out.write("usage: /save FILE\n")
            else:
                try:
                    out.write(f"(saved to {session.save(arg.strip())})\n")
                except OSError as e:
                    out.write(f"(could not save: {e})\n")
        elif command.startswith("/"):
            out.write(f"unknown command {command}. {HELP}\n")
        else:
            reply = session.send(line)
            if show_thinking and reply.reasoning:
                out.write(f"  (thinking: {reply.reasoning})\n")
            out.write("supporter> ")
            _stream(reply.content, out, word_delay)
            out.write("\n")


def _stream(text: str, out: TextIO, delay: float) -> None:
    for i, word in enumerate(text.split(" ")):
        out.write(("" if i == 0 else " ") + word)
        out.flush()
        if delay:
            time.sleep(delay)
