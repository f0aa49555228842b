"""A training chat: one long context, then questions and answers, one turn each, with the spans
that become its loss and answer-item masks.

The text is exactly what the model's chat template renders for these messages (a test checks
it), so what the model is trained on is what `shadowkv eval` and the server send it.
"""
import re
from collections.abc import Callable
from dataclasses import dataclass

from shadowkv_engine.eval import templates as t

from .tokenizer import BOS, EOT, header

# Answer-item kinds in the `kind` mask (0: not an answer item). `varied`: any fact of the varied
# layouts (layout_documents.py).
KINDS = {"passkey": 1, "niah": 2, "multiquery": 3, "multivalue": 4, "vt": 5, "fwe": 6, "varied": 7}
RETRIEVAL_KINDS = (1, 2, 7)  # single-answer retrieval: what the curriculum waits for


@dataclass(frozen=True)
class Turn:
    question: str
    prefix: str  # start of the answer: the needle's own words
    answer: str  # the rest of the answer, after the prefix
    kind: str
    pattern: str  # regex of the answer items inside `answer`


@dataclass(frozen=True)
class Conversation:
    context: Callable[[int], str]  # haystack size -> context text
    preamble: str  # "" for none
    turns: list[Turn]

    def render(self, n: int) -> tuple[str, list[tuple[int, int, int]]]:
        """The chat text at haystack size n, and spans (start, end, code): code 0 marks a whole
        answer (loss), a positive code marks an answer item of that kind."""
        parts = [BOS]
        spans = []
        for i, turn in enumerate(self.turns):
            user = t.user_message(self.preamble, self.context(n), turn.question) if i == 0 else turn.question
            # The chat template trims each message: a context that opens with indented code
            # lines (and no instruction) must lose its leading spaces here too.
            parts += [header("user"), user.strip(), EOT, header("assistant")]
            start = sum(map(len, parts))
            answer = turn.prefix + turn.answer
            for match in re.finditer(turn.pattern, turn.answer):
                offset = start + len(turn.prefix)
                spans.append((offset + match.start(), offset + match.end(), KINDS[turn.kind]))
            parts += [answer, EOT]
            spans.append((start, start + len(answer) + len(EOT), 0))
        return "".join(parts), spans
