"""The wording of every task: needles, preambles, questions and answers.

Wording follows RULER and the passkey test, with one deliberate change: the answer starts by
repeating the needle's own words ("One of the special magic numbers for K is:"), so the answer is
a copy of what followed those words in the context. A small model trained from scratch learns
that induction copy in minutes, and fails to learn retrieval when the question's wording never
appears next to the needle (../shared/reference/training_probe.md, runs 3 and 4). The training
script renders its data through these same functions, so train and eval prompts match.
"""

PASSKEY_PREAMBLE = ("There is an important info hidden inside a lot of irrelevant text. Find it and "
                    "memorize it. I will quiz you about the important information there.")
MAGIC_PREAMBLE = ("Some special magic numbers are hidden within the following text. Make sure to "
                  "memorize them. I will quiz you about the numbers afterwards.")
VT_PREAMBLE = "Memorize and track the chain(s) of variable assignment hidden in the following text."
FWE_PREAMBLE = ("Read the following coded text and track the frequency of each coded word. Find "
                "the three most frequently appeared coded words.")


def passkey_needle(passkey: str) -> str:
    return f"The pass key is {passkey}. Remember it. {passkey} is the pass key."


PASSKEY_QUESTION = "What is the pass key?"
PASSKEY_PREFIX = "The pass key is"


def magic_prefix(key: str) -> str:
    return f"One of the special magic numbers for {key} is:"


def magic_needle(key: str, value: str) -> str:
    return f"{magic_prefix(key)} {value}."


def magic_question(key: str) -> str:
    return f"What is the special magic number for {key} mentioned in the provided text?"


def multivalue_question(key: str) -> str:
    return f"What are all the special magic numbers for {key} mentioned in the provided text?"


def multivalue_prefix(key: str) -> str:
    return f"The special magic numbers for {key} are:"


def multiquery_question(keys: list[str]) -> str:
    return f"What are the special magic numbers for {_enumerate(keys)} mentioned in the provided text?"


def multiquery_answer(keys: list[str], values: list[str]) -> str:
    """One needle sentence per key, in the question's order: each is an induction copy."""
    return " ".join(magic_needle(k, v) for k, v in zip(keys, values, strict=True))


def vt_first_line(name: str, value: str) -> str:
    return f"VAR {name} = {value}."


def vt_hop_line(name: str, previous: str) -> str:
    return f"VAR {name} = VAR {previous}."


def vt_question(value: str) -> str:
    return f"Find all variables that are assigned the value {value} in the text above."


def vt_prefix(count: int, value: str) -> str:
    return (f"According to the chain(s) of variable assignment in the text above, {count} variables "
            f"are assigned the value {value}, they are:")


FWE_QUESTION = "What are the three most frequently appeared words in the above coded text?"
FWE_PREFIX = "Answer: According to the coded text above, the three most frequently appeared words are:"


def list_answer(items: list[str], separator: str = ", ") -> str:
    """The text a model should write after an answer prefix for a list of items."""
    return f" {separator.join(items)}."


def user_message(preamble: str, context: str, question: str) -> str:
    """The user's turn: instruction, context and question in paragraphs; no instruction, no paragraph."""
    return "\n\n".join(part for part in (preamble, context, question) if part)


def _enumerate(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
