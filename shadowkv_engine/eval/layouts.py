"""Layout pools: what a user may vary in a retrieval prompt, split into what training sees
(TRAIN) and what it never sees (HELDOUT).

A retrieval prompt is an optional instruction, a long filler with one or more facts ("needles")
hidden at any depth, and a question about one fact. What is split, disjointly:
- every sentence template: instructions, needle phrasings, question wordings;
- filler sources (fillers.py): each category (repeated sentences, prose, lists, code-like text)
  has sources in both pools, so held-out filler is a known kind of text in an unseen form;
- open-class words: the keys of magic numbers, people's names and their attributes.
What both splits share, because it is what the question is about rather than how it is put:
the kinds of fact (pass key, secret number, code, a key's magic number, a person's attribute)
and the nouns that name them, the value formats (4-8 digits, short alphanumeric codes), the
depth (uniform) and leaving the instruction out (NO_INSTRUCTION_RATE).

Training data (training/layout_documents.py) draws only from TRAIN; `shadowkv eval --split
heldout` measures on HELDOUT, `--split blind` on BLIND, `--split blind2` on BLIND2, `--split
blind3` on BLIND3, `--split blind4` on BLIND4, `--split blind5` on BLIND5, `--split blind6` on
BLIND6 and `--split blind7` on BLIND7 (more held-out splits, see there). The classic layouts
(tasks.py, templates.py) are members of the train pools: the README's passkey example is a train
layout.
"""
import itertools
import random
from dataclasses import dataclass

from . import templates as t
from . import words
from .fillers import FILLERS

NO_INSTRUCTION_RATE = 0.3  # a user often pastes a document and asks, with no instruction
DIGITS_RATE = 0.7  # where a kind takes either, how often its value is all digits
DIGITS = (4, 8)  # value lengths, inclusive
ALPHANUMERIC = (5, 8)


@dataclass(frozen=True)
class Pools:
    name: str
    instructions: tuple[str, ...]
    needles: tuple[str, ...]  # slots {subject}, {Subject} (capitalised) and {value}
    questions: tuple[str, ...]  # slots {subject}, {Subject}
    fillers: tuple[str, ...]  # names in fillers.FILLERS
    key_adjectives: tuple[str, ...]  # magic-number keys are adjective-noun pairs
    key_nouns: tuple[str, ...]
    names: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]  # (attribute, value format) of a person


TRAIN = Pools(
    name="train",
    instructions=(
        t.PASSKEY_PREAMBLE,
        "Read the text below carefully. Somewhere in it is a piece of information I will ask you about.",
        "The following document contains a few important facts among a lot of filler. Remember them.",
        "Below is a long text. Answer the question that follows it using only the text.",
        "Find the hidden facts in this text and keep them in mind.",
    ),
    needles=(
        "{Subject} is {value}. Remember it. {value} is {subject}.",
        "{Subject} is {value}.",
        "Note: {subject} is {value}.",
        "Remember that {subject} is {value}.",
        "{value} is {subject}.",
        "Do not forget: {subject} is {value}.",
    ),
    questions=(
        "What is {subject}?",
        "What is {subject} mentioned in the provided text?",
        "Tell me {subject}.",
        "Please give me {subject}.",
        "According to the text, what is {subject}?",
        "{Subject} is what?",
    ),
    fillers=("noise", "refrain", "prose", "encyclopedia", "inventory", "todo", "python"),
    key_adjectives=tuple(words.ADJECTIVES),
    key_nouns=tuple(words.NOUNS),
    names=tuple(words.NAMES),
    attributes=(("locker number", "digits"), ("room number", "digits"), ("badge code", "alnum"),
                ("ticket number", "digits"), ("PIN", "digits")),
)

HELDOUT = Pools(
    name="heldout",
    instructions=(
        "I am going to give you a long document. Pay attention to any numbers or codes in it, "
        "because I will ask about one of them.",
        "Here is some text. Hidden in it is what I am looking for, so please read all of it.",
        "Context follows. Use it to answer my question at the end.",
        "Please study the passage below; a question about one detail comes afterwards.",
    ),
    needles=(
        "Make a note of this: {subject} is {value}.",
        "Important: {subject} = {value}.",
        "For the record, {subject} is {value}, and nothing else.",
        "Keep in mind that {value} is {subject}.",
        "{Subject}, by the way, is {value}.",
    ),
    questions=(
        "Can you find {subject} in the text above?",
        "What was {subject} again?",
        "I need {subject}. What is it?",
        "Which value does the text give for {subject}?",
        "Do you remember {subject}? Please state it.",
    ),
    fillers=("weather", "diary", "table", "recipe", "log", "json"),
    key_adjectives=tuple(words.HELDOUT_ADJECTIVES),
    key_nouns=tuple(words.HELDOUT_NOUNS),
    names=tuple(words.HELDOUT_NAMES),
    attributes=(("parking spot", "digits"), ("membership ID", "alnum"), ("desk number", "digits"),
                ("employee code", "alnum")),
)

# A second held-out split, written on 2026-12-01 after the shipped model was trained, from no
# look at its outputs: the held-out split had by then steered several rounds of training data
# (which of its fillers, needle shapes and attributes failed), so it no longer measures shapes
# nobody planned for. This one is read, not tuned on: keep its material out of training and its
# misses out of the choice of training data; once they steer training, it measures no more than
# HELDOUT does, and a new blind split has to be written.
BLIND = Pools(
    name="blind",
    instructions=(
        "What follows is a long piece of text that I copied for you. Somewhere inside is one "
        "detail that matters.",
        "Skim through the material below; I will quiz you on a single fact from it.",
        "Attached is a document. My question is at the bottom.",
        "You are a careful reader. The text below is mostly noise, except for one line.",
    ),
    needles=(
        "By the way, {subject} has been set to {value} for now.",
        "{value} — that's {subject}, in case you need it.",
        "The system assigned {value} as {subject}.",
        "Word came in this morning that {subject} would be {value}.",
        "P.S. {Subject} equals {value}. Write it down somewhere safe.",
    ),
    questions=(
        "Quick check: do you know what {subject} is?",
        "Remind me, what did the text say about {subject}?",
        "So what is {subject}? Just the value, please.",
        "Looking back at the document, which value was {subject}?",
        "I lost track of {subject}. Can you tell me?",
    ),
    fillers=("bells", "news", "csv", "changelog"),
    key_adjectives=tuple(words.BLIND_ADJECTIVES),
    key_nouns=tuple(words.BLIND_NOUNS),
    names=tuple(words.BLIND_NAMES),
    attributes=(("mailbox number", "digits"), ("parcel reference", "alnum"),
                ("cloakroom token", "digits"), ("loyalty card", "alnum")),
)

# A third held-out split, written on 2026-12-01 before the model trained on
# training/needle_grammar.py's data existed and before any model was run on it: that grammar was
# written after reading BLIND's results (which needle shapes failed), so BLIND no longer measures
# shapes nobody planned for. Written without reference to training's parts; read, not tuned on:
# keep its material out of training and its misses out of the choice of training data.
BLIND2 = Pools(
    name="blind2",
    instructions=(
        "I'm sharing a long set of notes from work. There's one detail in there that I need you "
        "to dig out for me.",
        "A coworker forwarded me this whole thread and I don't have time to wade through it, so "
        "I'm hoping you can.",
        "This is everything from the shared folder, copied over as plain text. I only care about "
        "one value in it.",
        "Hi! Sorry for the huge paste. What I want to ask is right after it.",
    ),
    needles=(
        "After a lot of back and forth on the phone, we settled on {value} for {subject}, and "
        "nobody has objected since.",
        "{Subject}, which took me three calls to the helpdesk to get, is {value} and I am not "
        "calling again.",
        "Kindly be advised that {subject} has been amended to {value}, effective from the start "
        "of next month.",
        "ok before I forget, {subject}?? it's {value}, my sister just texted it to me",
        "The receptionist wrote {value} on a yellow slip and said it was {subject}.",
    ),
    questions=(
        "For our records, kindly confirm {subject} exactly as written.",
        "Could you pull out {subject} for me? That's the only bit I care about.",
        "Any idea what {subject} ended up being in all that?",
        "{Subject} is hiding in there somewhere; mind fishing it out for me?",
        "Going by everything I pasted, what have we got down for {subject}?",
    ),
    fillers=("platform", "sports", "receipt", "stylesheet"),
    key_adjectives=tuple(words.BLIND2_ADJECTIVES),
    key_nouns=tuple(words.BLIND2_NOUNS),
    names=tuple(words.BLIND2_NAMES),
    attributes=(("bike lock combination", "digits"), ("wifi password", "alnum"),
                ("storage unit", "digits"), ("licence plate", "alnum")),
)

# A fourth held-out split, written on 2026-12-01 (session 13) after BLIND2 had been read (its
# per-template and per-filler results may steer the next model's training data), before the model
# trained after it existed and before any model was run on it; written without reference to
# training's parts. Read, not tuned on: keep its material out of training and its misses out of
# the choice of training data.
BLIND3 = Pools(
    name="blind3",
    instructions=(
        "Please find below the full text of the document under review. I would be grateful if you "
        "could locate one particular detail in it.",
        "Hello, I put here the document from my office, it is very long. Inside is one "
        "information that I need, please help me to find it.",
        "long doc below, one question after it",
        "Request type: lookup / Source: pasted text (below) / Urgency: normal",
        "Go through everything pasted below, line by line, and be ready to answer from it alone.",
    ),
    needles=(
        "Field seven, {subject}, to be filled in block capitals: {value}",
        "About {subject} (my colleague told it to me yesterday, I hope I write it correct), it "
        "is {value}.",
        "The figure {value}, having been checked by the undersigned, shall be treated as "
        "{subject} from the date of signature.",
        "lol I typed {value} into the portal three times before anyone mentioned that was "
        "{subject} and not the login",
        "Don't mix this one up with anything else: {subject}, the one we will need on Monday "
        "morning at the front gate, reads {value}.",
        "{Subject} — checked twice ({value}), no further action needed.",
    ),
    questions=(
        "Would you be so kind as to state {subject}, exactly as it is recorded above?",
        "Please, which is {subject}? I am searching it since one hour and I cannot find.",
        "need {subject} asap, ty",
        "Information requested: {subject}. Reply with the value only.",
        "ok dumb question but {subject} is somewhere in that wall of text and I genuinely cannot "
        "spot it, what is it?",
        "Scroll back up and tell me {subject}, word for word.",
    ),
    fillers=("legal", "minutes", "calendar", "shell"),
    key_adjectives=tuple(words.BLIND3_ADJECTIVES),
    key_nouns=tuple(words.BLIND3_NOUNS),
    names=tuple(words.BLIND3_NAMES),
    attributes=(("allotment plot", "digits"), ("gas meter reading", "digits"),
                ("vaccination record", "alnum"), ("pallet label", "alnum")),
)

# A fifth held-out split, written on 2026-12-01 (session 13) after BLIND3 had been read (its
# per-template and per-filler results may steer the next model's training data), before the next
# model existed and before any model was run on it; written without reference to training's parts.
# Read, not tuned on: keep its material out of training and its misses out of the choice of
# training data.
BLIND4 = Pools(
    name="blind4",
    instructions=(
        "Escalated ticket, with the full customer history pasted underneath. One detail from it "
        "is needed before the case can be resolved.",
        "sending u the whole thing, sorry its massive!! gonna ask u something about it after",
        "The following excerpt is reproduced in full from the source archive. Please read it "
        "closely; a question concerning a single reported value follows.",
        "Good day, here I am giving you all the text what I have received. Please read it all, "
        "after I will ask one thing.",
        "raw dump follows (unedited). one lookup at the end, answer from the dump only",
    ),
    needles=(
        "Customer writes back that the string they were given for {subject} was \"{value}\"; "
        "please verify on our side before closing.",
        "{value} <- thats {subject} btw, saving it here so i dont lose it again",
        "As reported in the appendix to the second interim study, {subject}, which several "
        "reviewers had initially misread and which the authors have since checked against the "
        "original field notebooks, was recorded as {value}.",
        "Checklist - passport photo: attached; proof of address: attached; {subject}: {value}; "
        "fee: paid; signature: pending.",
        "Sorry for my english, I want to say that {subject} is this one what is in the brackets "
        "({value}) and it is not change.",
        "{Subject} pinned to {value} on all hosts; no rollback planned, ping me if it breaks.",
    ),
    questions=(
        "Customer is chasing {subject} again. Can you look it up in the history above and reply "
        "so I can close this?",
        "wait whats {subject} again?? its in there somewhere",
        "On the basis of the material reproduced above, what figure do the authors report for "
        "{subject}?",
        "Pursuant to the enquiry received, please state {subject} in the space provided.",
        "You can tell me please {subject}? I have read two times but I don't see where it is.",
        "{Subject}? Need it for the deploy.",
    ),
    fillers=("leaflet", "reviews", "timetable", "settings"),
    key_adjectives=tuple(words.BLIND4_ADJECTIVES),
    key_nouns=tuple(words.BLIND4_NOUNS),
    names=tuple(words.BLIND4_NAMES),
    attributes=(("pharmacy collection slip", "digits"), ("safe deposit box", "digits"),
                ("warranty claim", "alnum"), ("mooring berth", "alnum")),
)

# A sixth held-out split, written on 2026-12-01 (session 14) after BLIND4 had been read (its
# per-template and per-filler results may steer the next model's training data), before the model
# after run 10 existed and before any model was run on it; written without reference to training's
# parts. Read, not tuned on: keep its material out of training and its misses out of the choice of
# training data.
BLIND5 = Pools(
    name="blind5",
    instructions=(
        "Dear Sir or Madam, my grandson showed me how to use this. I have typed out the whole "
        "letter from the council below and there is one thing in it that I cannot find.",
        "Context: plain-text export of the team wiki (formatting got lost in the copy). Question "
        "underneath.",
        "ok this is my entire notes doc from the semester, dont judge the mess lol. need one thing "
        "out of it",
        "The material set out below was supplied by the applicant. Kindly review it in its "
        "entirety before responding to the query at the end.",
        "Pasting the voicemail transcript plus the emails that came with it. Somewhere in this lot "
        "is the bit I'm after.",
    ),
    needles=(
        "yeah hi, it's me again, um, about {subject}, it's {value}, so give me a ring back if that "
        "doesn't work for you, okay, bye",
        "{Subject}:: {value} (last verified during the spring audit, ask before changing)",
        "We are writing to confirm that {subject} is now {value}. Please quote this in all future "
        "correspondence with the department.",
        "!!! TA said this WILL come up: {subject} --> {value} (memorise!!)",
        "Reference {value} has been allocated as {subject}; please keep this letter in a safe "
        "place.",
        "RE: {subject} -- hi all, just so this is written down somewhere other than my head: "
        "'{value}'. Cheers",
    ),
    questions=(
        "Could you please tell me what {subject} is? My eyes are not what they were and I have "
        "read it through twice.",
        "Lookup: {subject}. Value only, no explanation.",
        "so what did i write down for {subject}?? exam is tomorrow",
        "With reference to the above, please confirm {subject} as stated therein.",
        "What did they end up giving as {subject}? Couldn't make it out on the call.",
        "Somebody in that thread mentioned {subject}, can you find it and tell me what it was?",
    ),
    fillers=("knitting", "termreport", "bookindex", "migration"),
    key_adjectives=tuple(words.BLIND5_ADJECTIVES),
    key_nouns=tuple(words.BLIND5_NOUNS),
    names=tuple(words.BLIND5_NAMES),
    attributes=(("jury summons", "digits"), ("dry cleaning ticket", "digits"),
                ("kennel booking", "alnum"), ("hearing aid serial", "alnum")),
)

# A seventh held-out split, written on 2026-12-01 (session 15) after BLIND5 had been read, before
# any model was run on it, and written blind: without reading training's parts or the other pools'
# material. Read, not tuned on: keep its material out of training and its misses out of the choice
# of training data.
BLIND6 = Pools(
    name="blind6",
    instructions=(
        "Hi support team, I've pasted the full export of our shared inbox below because search "
        "won't work on my phone. One detail is buried in there somewhere.",
        "Night desk handover follows. Skim it if you like, but when you reach the end I need one "
        "item pulled out of it.",
        "Lab notebook, copied out word for word for the audit. Entries are out of order; answer "
        "the query at the foot of the page from these entries alone.",
        "Below is everything from the running club's group chat since spring. My question is "
        "right at the bottom, after all the chatter.",
        "Puzzle hunt, final round: the answer to the last clue is hidden in the text that follows. "
        "No hints, no partial credit.",
    ),
    needles=(
        "<mod> pinned a message: {value} is {subject}, please stop asking in here",
        "{Subject};{value};verified;;",
        "fix(import): stop the nightly job resetting {subject}, which has to stay {value}",
        "For the avoidance of doubt, {value} (hereinafter {subject}) shall not be altered without "
        "the written consent of both parties.",
        "After weeks of back and forth, two missed deliveries and one very calm locksmith, I "
        "can finally tell you that {subject} is, believe it or not, {value}",
        "Agent note: caller confirmed {subject} over the phone ({value}), ticket can be closed.",
    ),
    questions=(
        "Ticket update requested: the customer wants {subject}. Can you pull it from the history "
        "above?",
        "<me> does anyone remember {subject}?? been scrolling for ages",
        "Pursuant to the foregoing, state {subject}.",
        "Fill in the empty cell: {Subject} = ?",
        "Before I sign off the handover, what was {subject} again?",
        "Last clue: {subject}. Give exactly what the text gives, nothing more.",
    ),
    fillers=("breathing", "shipslog", "crossword", "basic"),
    key_adjectives=tuple(words.BLIND6_ADJECTIVES),
    key_nouns=tuple(words.BLIND6_NOUNS),
    names=tuple(words.BLIND6_NAMES),
    attributes=(("choir folder", "digits"), ("canal licence", "alnum"),
                ("ferry boarding pass", "alnum"), ("seed bank accession", "alnum")),
)

# An eighth held-out split, written on 2026-12-01 (session 16) after BLIND6 had been read, before
# any model was run on it, and written blind: without reading training's parts. Read, not tuned
# on: keep its material out of training and its misses out of the choice of training data.
BLIND7 = Pools(
    name="blind7",
    instructions=(
        "This is the caption file from Saturday's broadcast, commentary, crowd noise and all. At "
        "some point one of the commentators reads out the thing I'm after.",
        "Catalogue cards for the east wing follow, as typed up by our volunteers over the winter. "
        "A visitor's enquiry is attached at the end; please answer it from the cards alone.",
        "GM here. Below are my campaign notes from the last few sessions, in no particular order. "
        "One of my players has asked me something and I honestly can't recall what I told them.",
        "Transcript of proceedings, as certified by the court reporter. Counsel's question for "
        "you is set out after the final page.",
        "I have been typing up my late aunt's letters one by one, and they are all below. My "
        "cousin has asked about one thing she mentions in them.",
    ),
    needles=(
        "[crowd noise] ...and up it goes on the big screen, {subject}: {value}! Extraordinary "
        "scenes here!",
        "Inscribed on the underside in faded ink: «{value}». The gallery's register "
        "records that inscription as {subject}.",
        "Remember, love, when autumn comes and goes, / that {subject} is {value}, as the old song "
        "goes.",
        "Q. And what did you understand {subject} to be? A. {value}, sir. I wrote it on the back "
        "of my hand.",
        "★★★★☆ Lovely place, would go back. Tip for anyone staying: "
        "the card behind the kettle, which we only found on our last night, says {subject} is "
        "{value}.",
        "ARRIVED SAFE STOP {subject} IS {value} STOP TELL MOTHER NOT TO WORRY STOP",
    ),
    questions=(
        "Counsel asks: what, according to the transcript, was {subject}?",
        "I'm filling in a form tonight that wants three things: my postcode, which I know, "
        "today's date, which I know, and {subject}, which I don't. Can you find that last one "
        "for me?",
        "{Subject}, per the above? One line.",
        "If it isn't too much trouble, would you let me know {subject}? My cousin has asked me "
        "twice now and I'd hate to get it wrong.",
        "I wonder whether any of this mentions {subject}; if it does, I'd like to know what it "
        "says.",
        "One of my players swears I told them {subject} at the table. What would I have said?",
    ),
    fillers=("planetarium", "auction", "pairings", "latex"),
    key_adjectives=tuple(words.BLIND7_ADJECTIVES),
    key_nouns=tuple(words.BLIND7_NOUNS),
    names=tuple(words.BLIND7_NAMES),
    attributes=(("dinghy sail number", "digits"), ("beehive registration", "alnum"),
                ("telescope booking", "alnum"), ("tombola ticket", "digits")),
)

SPLITS = {pools.name: pools for pools in (TRAIN, HELDOUT, BLIND, BLIND2, BLIND3, BLIND4, BLIND5,
                                          BLIND6, BLIND7)}

# Kinds of fact that need no name: at most one of each in a context. (subjects, value formats)
UNNAMED_KINDS = {
    "pass key": (("the pass key", "the passkey"), ("digits", "alnum")),
    "secret number": (("the secret number",), ("digits",)),
    "code": (("the access code", "the secret code"), ("digits", "alnum")),
}
# Kinds told apart by a name: a key's magic number, a person's attribute; any number of each.
NAMED_KINDS = ("magic number", "attribute")


@dataclass(frozen=True)
class Fact:
    kind: str
    subjects: tuple[str, ...]  # ways to name it, all meaning the same thing; the first is canonical
    value: str
    value_format: str  # "digits5", "alnum7", ...


def draw_value(rng: random.Random, formats: tuple[str, ...]) -> str:
    alnum = "alnum" in formats and ("digits" not in formats or rng.random() >= DIGITS_RATE)
    if alnum:
        return words.alphanumeric(rng, rng.randint(*ALPHANUMERIC))
    return words.number(rng, rng.randint(*DIGITS))


def draw_fact(rng: random.Random, pools: Pools, kind: str, taken: set[str]) -> Fact:
    """A fact of `kind` whose canonical subject is not in `taken` (which it joins)."""
    for _ in range(1000):
        if kind in UNNAMED_KINDS:
            subjects, formats = UNNAMED_KINDS[kind]
        elif kind == "magic number":
            key = f"{rng.choice(pools.key_adjectives)}-{rng.choice(pools.key_nouns)}"
            subjects = (f"the special magic number for {key}", f"the magic number for {key}")
            formats = ("digits",)
        elif kind == "attribute":
            name = rng.choice(pools.names)
            attribute, value_format = rng.choice(pools.attributes)
            subjects, formats = (f"{name}'s {attribute}", f"the {attribute} of {name}"), (value_format,)
        else:
            raise ValueError(f"unknown kind of fact {kind!r}")
        if subjects[0] not in taken:
            taken.add(subjects[0])
            value = draw_value(rng, formats)
            shape = "digits" if value.isdigit() else "alnum"
            return Fact(kind, subjects, value, f"{shape}{len(value)}")
    raise ValueError(f"no fresh {kind!r} left in the {pools.name} pools")


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def needle_sentence(template: str, subject: str, value: str) -> str:
    return template.format(subject=subject, Subject=capitalised(subject), value=value)


def question_text(template: str, subject: str) -> str:
    return template.format(subject=subject, Subject=capitalised(subject))


def answer_prefix(subject: str) -> str:
    """How an answer starts: 'The pass key is' (the value follows)."""
    return f"{capitalised(subject)} is"


def check_pools() -> None:
    """The splits' promise: nothing that varies is in two pools (tests call this too)."""
    for field in ("instructions", "needles", "questions", "fillers", "key_adjectives", "key_nouns",
                  "names", "attributes"):
        for a, b in itertools.combinations(SPLITS.values(), 2):
            shared = set(getattr(a, field)) & set(getattr(b, field))
            if shared:
                raise AssertionError(
                    f"{field} in both {a.name} and {b.name}: {sorted(map(str, shared))}")
    for pools in SPLITS.values():
        unknown = [f for f in pools.fillers if f not in FILLERS]
        if unknown:
            raise AssertionError(f"{pools.name}: unknown fillers {unknown}")
