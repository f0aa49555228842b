"""Filler sources: the text that needles hide in, made one unit (a sentence or a line) at a time.

A user's long document may be repeated boilerplate, prose, a list or code, so there are four
categories of filler, each with several sources. The layout split (layouts.py) holds some sources
of every category out of training: a held-out prompt has a kind of filler the model knows in a
form it has never read. `noise` and `prose` are the classic haystacks of the RULER-style tasks.

A unit is a function of the source's random generator and its index, drawn in order (see
Haystack). Units are joined by the source's separator: a space between sentences, a newline
between lines of a list or of code. Numbers in fillers stay below 1000, so a needle's value (4+
characters with a digit) is the only key-shaped token in a context.
"""
import random
from collections.abc import Callable
from dataclasses import dataclass

from . import words

CATEGORIES = ("repeated", "prose", "list", "code")


@dataclass(frozen=True)
class Filler:
    name: str
    category: str
    separator: str
    unit: Callable[[random.Random, int], str]  # (the source's generator, unit index) -> text


def _cycle(sentences: tuple[str, ...]) -> Callable[[random.Random, int], str]:
    return lambda rng, i: sentences[i % len(sentences)]


def _pattern(patterns: tuple[str, ...], adjectives, nouns, names, verbs=words.VERBS,
             adverbs=words.ADVERBS) -> Callable[[random.Random, int], str]:
    """Sentences from a small grammar: each pattern's slots filled from the given word lists."""
    def unit(rng: random.Random, i: int) -> str:
        adj, adj2 = rng.sample(adjectives, 2)
        noun, noun2 = rng.sample(nouns, 2)
        name, name2 = rng.sample(names, 2)
        return rng.choice(patterns).format(
            adj=adj, adj2=adj2, noun=noun, noun2=noun2, name=name, name2=name2,
            verb=rng.choice(verbs), adv=rng.choice(adverbs), n=rng.randint(2, 999))
    return unit


def _cast(rng: random.Random, adjectives, nouns, names) -> dict[str, str]:
    """The words of one unit of a story-like filler: an adjective, two nouns ("a"/"an" and the
    first), two names; drawn in that order."""
    adj = rng.choice(adjectives)
    noun, noun2 = rng.sample(nouns, 2)
    name, name2 = rng.sample(names, 2)
    return {"adj": adj, "noun": noun, "noun2": noun2,
            "a_noun": ("an " if noun[0] in "aeiou" else "a ") + noun, "name": name, "name2": name2}


# -- repeated sentences ------------------------------------------------------------------------
NOISE_SENTENCES = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
                   "There and back again.")
REFRAIN_SENTENCES = ("The cat sleeps on the mat.", "Rain falls on the old roof.", "The kettle is on.",
                     "Birds sing in the morning.", "Time goes by slowly.", "All is well.")
WEATHER_SENTENCES = ("The wind is cold today.", "The river runs down to the sea.",
                     "Clouds drift over the hills.", "A dog barks far away.", "The clock on the wall ticks.")

# -- prose -------------------------------------------------------------------------------------
_PROSE_PATTERNS = (
    "The {adj} {noun} {verb} the {adj2} {noun2}.",
    "{name} {verb} the {adj} {noun} near the {noun2}.",
    "A {adj} {noun} stood beside the {adj2} {noun2} all day.",
    "{name} and {name2} {adv} {verb} a {adj} {noun}.",
    "Nobody {verb} the {noun} that {name} had left by the {noun2}.",
    "Every morning the {adj} {noun} {adv} {verb} the {noun2}.",
    "In the {adj} {noun2}, {name} {verb} an old {noun}.",
    "The {noun} was {adj}, and the {noun2} was {adj2}.",
)


def prose_sentence(rng: random.Random) -> str:
    """The classic prose haystack's sentence (its draws are fixed: eval samples must not change)."""
    adj, adj2 = rng.sample(words.ADJECTIVES, 2)
    noun, noun2 = rng.sample(words.NOUNS, 2)
    name, name2 = rng.sample(words.NAMES, 2)
    return rng.choice(_PROSE_PATTERNS).format(
        adj=adj, adj2=adj2, noun=noun, noun2=noun2, name=name, name2=name2,
        verb=rng.choice(words.VERBS), adv=rng.choice(words.ADVERBS))


_ENCYCLOPEDIA_PATTERNS = (
    "A {noun} is often {adj}, but a {noun2} is rarely {adj2}.",
    "In old stories, the {noun} {verb} the {noun2}.",
    "People say that a {adj} {noun} brings {adj2} weather.",
    "The first {noun} was made of {adj} wood, long before the {noun2}.",
    "Scholars disagree about why {name} {verb} the {noun}.",
    "Some {noun2} makers still {adv} paint the {noun} {adj}.",
)
_DIARY_PATTERNS = (
    "Today I found a {adj} {noun} near the {noun2}.",
    "{name} came by in the evening with a {noun}.",
    "I could not stop thinking about the {adj} {noun}.",
    "We walked to the {noun} and back before lunch.",
    "Tomorrow {name} and I will fix the {adj} {noun2}.",
    "It rained again, so I stayed in and polished the {noun}.",
    "{name2} laughed when the {adj2} {noun} fell off the {noun2}.",
)

# -- lists -------------------------------------------------------------------------------------
_CHORES = ("buy", "clean", "fix", "move", "paint", "return", "check", "pack", "wash", "sort")
_CITIES = ("Lisbon", "Oslo", "Cairo", "Lima", "Hanoi", "Quito", "Perth", "Tunis", "Riga", "Dakar")
_INGREDIENTS = ("flour", "sugar", "butter", "rice", "salt", "honey", "oats", "milk", "cocoa", "yeast")

# -- code-like text ----------------------------------------------------------------------------
_PYTHON_PATTERNS = (
    "def {chore}_{noun}({noun2}):",
    "    {noun} = {noun2} + {n}",
    "    return {noun}",
    "for {noun} in {noun2}_items:",
    "if {noun} > {n}:",
    "{noun}_list.append({noun2})",
    "print({noun}, {n})",
)
_LOG_PATTERNS = (
    "[INFO] {hh:02d}:{mm:02d}:{ss:02d} {noun} service started",
    "[WARN] {hh:02d}:{mm:02d}:{ss:02d} {noun} queue is {pct}% full",
    "[DEBUG] worker {w} picked up a {noun} job",
    "[INFO] {hh:02d}:{mm:02d}:{ss:02d} {noun} finished in {n} ms",
)


def _lines(patterns: tuple[str, ...], nouns) -> Callable[[random.Random, int], str]:
    def unit(rng: random.Random, i: int) -> str:
        noun, noun2 = rng.sample(nouns, 2)
        return rng.choice(patterns).format(
            noun=noun, noun2=noun2, chore=rng.choice(_CHORES), n=rng.randint(2, 999),
            hh=rng.randrange(24), mm=rng.randrange(60), ss=rng.randrange(60),
            pct=rng.randint(10, 99), w=rng.randint(1, 64))
    return unit


def _inventory(rng: random.Random, i: int) -> str:
    return f"- {rng.choice(words.NOUNS)}: {rng.randint(1, 99)}"


def _todo(rng: random.Random, i: int) -> str:
    return f"[ ] {rng.choice(_CHORES)} the {rng.choice(words.ADJECTIVES)} {rng.choice(words.NOUNS)}"


def _table(rng: random.Random, i: int) -> str:
    return f"{rng.choice(words.HELDOUT_NAMES)} | {rng.choice(_CITIES)} | {rng.randint(18, 90)}"


def _recipe(rng: random.Random, i: int) -> str:
    return f"* {rng.randint(5, 500)} g {rng.choice(_INGREDIENTS)}, {rng.choice(words.HELDOUT_ADJECTIVES)}"


def _json(rng: random.Random, i: int) -> str:
    return (f'{{"name": "{rng.choice(words.HELDOUT_NAMES)}", "item": '
            f'"{rng.choice(words.HELDOUT_NOUNS)}", "count": {rng.randint(0, 999)}}},')


# -- the blind split's sources (layouts.py), one of each category, over the blind words ----------
BELL_SENTENCES = ("The bells ring at noon.", "Snow covers the quiet road.",
                  "The boat rocks in the harbour.", "Someone whistles a tune.",
                  "The lamp flickers twice.", "Leaves gather by the gate.")
_NEWS_PATTERNS = (
    "Local officials said the {adj} {noun} would reopen next week.",
    "According to residents, {name} has repaired the {noun} behind the {noun2}.",
    "The {adj} {noun} festival drew a crowd of {n} visitors on Sunday.",
    "A spokesperson for {name} declined to comment on the {adj2} {noun2}.",
    "Weather delayed the delivery of the {noun} by {n} minutes.",
    "Critics called the new {noun} {adj}, while fans praised its {adj2} {noun2}.",
)
_CHANGELOG_PATTERNS = (
    "* Fixed a {adj} {noun} crash on start-up (#{n})",
    "* Added {noun2} export to the {noun} menu",
    "* Renamed {noun} to {noun2} in the settings page",
    "## {mm} release notes",
    "* Improved {noun} loading by {pct} percent",
    "* Removed the unused {adj} {noun2} option (#{n})",
)

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def _csv(rng: random.Random, i: int) -> str:
    return f"{rng.choice(words.BLIND_NAMES)};{rng.choice(words.BLIND_NOUNS)};{rng.randint(1, 999)}"


def _changelog(rng: random.Random, i: int) -> str:
    adj, noun, noun2 = rng.choice(words.BLIND_ADJECTIVES), *rng.sample(words.BLIND_NOUNS, 2)
    return rng.choice(_CHANGELOG_PATTERNS).format(
        adj=adj, noun=noun, noun2=noun2, n=rng.randint(2, 999), pct=rng.randint(2, 90),
        mm=rng.choice(_MONTHS))


# -- the blind2 split's sources (layouts.py), one of each category, over the blind2 words --------
PLATFORM_SENTENCES = ("Please stand clear of the closing doors.",
                      "This service terminates at the next stop.", "Mind the step when leaving.",
                      "Tickets can be bought on board.",
                      "Please keep your belongings with you at all times.",
                      "Refreshments are available in coach four.")
_SPORTS_PATTERNS = (
    "{name} scored twice as the {adj} {noun} club won at home in front of {n} fans.",
    "The {noun} derby ended goalless after {name} missed a penalty in added time.",
    "{name} and {name2} split the {adj} {noun} trophy after finishing level on {n} points.",
    "Coach {name} praised the {adj} defence but called the {noun2} pitch {adj2}.",
    "Fans of the {noun} club booed as {name} was sent off early in the second half.",
    "After a {adj} start, the {noun2} side came back to win by {n} runs.",
)
# One rule a line, no units: "12px" would be a key-shaped token.
_STYLESHEET_PATTERNS = (
    ".{adj}-{noun} {{ width: {pct}%; }}",
    "#{noun} {{ opacity: 0.{d}; }}",
    ".{noun} > .{noun2} {{ z-index: {n}; }}",
    "@media print {{ .{adj}-{noun} {{ display: none; }} }}",
    ".{adj} .{noun}:hover {{ font-weight: {d}00; }}",
    "/* {adj} {noun} styles */",
)


def _receipt(rng: random.Random, i: int) -> str:
    return (f"{rng.randint(1, 9)} x {rng.choice(words.BLIND2_ADJECTIVES)} "
            f"{rng.choice(words.BLIND2_NOUNS)} @ {rng.randint(1, 99)}.{rng.randint(0, 99):02d}")


def _stylesheet(rng: random.Random, i: int) -> str:
    adj, noun, noun2 = rng.choice(words.BLIND2_ADJECTIVES), *rng.sample(words.BLIND2_NOUNS, 2)
    return rng.choice(_STYLESHEET_PATTERNS).format(
        adj=adj, noun=noun, noun2=noun2, n=rng.randint(1, 999), pct=rng.randint(5, 100),
        d=rng.randint(1, 9))



# -- the blind3 split's sources (layouts.py), one of each category, over the blind3 words --------
LEGAL_SENTENCES = ("This agreement shall be governed by the laws of the place where it was signed.",
                   "Nothing in this clause limits either party's rights under applicable law.",
                   "Headings are inserted for convenience only and shall not affect interpretation.",
                   "Any notice under this agreement must be given in writing to the other party.",
                   "If any provision is held to be invalid, the remaining provisions shall continue "
                   "in full force.",
                   "Words importing the singular include the plural and vice versa.")
_MINUTES_PATTERNS = (
    "{name} opened the meeting and apologised for the state of the {adj} {noun}.",
    "Apologies were received from {name} and {name2}.",
    "Action: {name} to find out who owns the {adj} {noun2} before the next meeting.",
    "{name2} raised concerns about the {noun}; after some discussion no decision was taken.",
    "The minutes of the last meeting were approved, subject to one correction about the {noun2}.",
    "It was agreed that the {adj} {noun} would stay in the hall until the spring.",
    "There being no other business, the chair closed the meeting after {n} minutes.",
)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_ABBREVIATIONS = tuple(month[:3] for month in _MONTHS)
_EVENTS = ("sync", "review", "catch-up", "rehearsal", "drop-in", "fitting", "walkthrough")
# A terminal session: prompts, commands and their output, one line a unit.
_SHELL_PATTERNS = (
    "{user}@{host}:~/{noun}$ ls",
    "{noun}.md  {adj}-{noun2}  notes.txt",
    "{user}@{host}:~/{noun}$ cd {adj}-{noun2}",
    "{user}@{host}:~$ grep -rn {adj} {noun}/",
    "{noun}/index.md:{n}:the {adj} {noun2} is still missing",
    "{user}@{host}:~$ wc -l {noun}.md",
    "{n} {noun}.md",
    "bash: {noun2}: command not found",
    "{user}@{host}:~/{noun}$ mv {noun2}.txt old/",
    "-rw-r--r-- 1 {user} staff {n} {mon} {day} {noun}.md",
)


def _calendar(rng: random.Random, i: int) -> str:
    start = rng.randrange(7 * 4, 19 * 4)  # in quarter hours
    end = start + rng.randint(1, 8)
    return (f"{rng.choice(_WEEKDAYS)} {rng.randint(1, 28)} {rng.choice(_MONTH_ABBREVIATIONS)} · "
            f"{start // 4:02d}:{start % 4 * 15:02d}-{end // 4:02d}:{end % 4 * 15:02d} · "
            f"{rng.choice(words.BLIND3_ADJECTIVES)} {rng.choice(words.BLIND3_NOUNS)} "
            f"{rng.choice(_EVENTS)} · {rng.choice(words.BLIND3_NAMES)}")


def _shell(rng: random.Random, i: int) -> str:
    adj, (noun, noun2, host) = rng.choice(words.BLIND3_ADJECTIVES), rng.sample(words.BLIND3_NOUNS, 3)
    return rng.choice(_SHELL_PATTERNS).format(
        user=rng.choice(words.BLIND3_NAMES).lower(), host=host, adj=adj, noun=noun, noun2=noun2,
        n=rng.randint(1, 999), mon=rng.choice(_MONTH_ABBREVIATIONS), day=rng.randint(1, 28))


# -- the blind4 split's sources (layouts.py), one of each category, over the blind4 words --------
LEAFLET_SENTENCES = ("Keep out of the sight and reach of children.",
                     "Do not use after the expiry date printed on the carton.",
                     "Shake gently before each use and replace the cap straight away.",
                     "If you miss a dose, do not take a double dose to make up for it.",
                     "Ask your pharmacist how to throw away medicines you no longer use.",
                     "Talk to your doctor if the symptoms do not improve.")
# A thread of customer reviews under a product page.
_REVIEW_PATTERNS = (
    "{name} gave it four stars: the {adj} {noun} arrived early but the box was crushed.",
    "Honestly the {noun} is more {adj} than the photos suggest, would still buy again.",
    "Verified purchase. My {adj} {noun} gave up after {n} days, so back it went.",
    "Does anyone know whether the {noun} fits the {adj2} {noun2}? Asking for my dad.",
    "Reply from {name2}: mine came with a {adj} {noun2} instead, but support sorted it out.",
    "Five stars for the {noun} itself, minus one for the {adj} packaging.",
    "{name} and {name2} found this review helpful.",
)
_STOP_KINDS = ("Road", "Lane", "Square", "Depot", "Corner", "Parade", "Hill", "Crossing")
# Sections, keys and comments of a settings file (INI style), one line a unit.
_SETTINGS_PATTERNS = (
    "[{noun}]",
    "[{adj}_{noun2}]",
    "; settings for the {adj} {noun}",
    "{noun}_enabled = yes",
    "retries = {n}",
    "owner = {name}",
    "path = /srv/{noun}/{noun2}",
    "{adj}_mode = off",
    'label = "{Adj} {Noun}"',
    "timeout_seconds = {n}",
)


def _timetable(rng: random.Random, i: int) -> str:
    stop = (f"{rng.choice(words.BLIND4_ADJECTIVES).capitalize()} "
            f"{rng.choice(words.BLIND4_NOUNS).capitalize()} {rng.choice(_STOP_KINDS)}")
    minute = rng.randrange(5 * 60, 9 * 60)
    step = rng.choice((10, 12, 15, 20, 30))
    times = "  ".join(f"{(minute + k * step) // 60:02d}:{(minute + k * step) % 60:02d}"
                      for k in range(rng.randint(3, 6)))
    return f"{stop}  dep  {times}"


def _settings(rng: random.Random, i: int) -> str:
    adj, (noun, noun2) = rng.choice(words.BLIND4_ADJECTIVES), rng.sample(words.BLIND4_NOUNS, 2)
    return rng.choice(_SETTINGS_PATTERNS).format(
        adj=adj, Adj=adj.capitalize(), noun=noun, noun2=noun2, Noun=noun.capitalize(),
        name=rng.choice(words.BLIND4_NAMES), n=rng.randint(1, 999))


# -- the blind5 split's sources (layouts.py), one of each category, over the blind5 words --------
KNITTING_SENTENCES = ("Cast on loosely, leaving a long tail for sewing up later.",
                      "Knit every stitch to the end of the row, then turn the work.",
                      "Slip the first stitch of each row purlwise with the yarn held in front.",
                      "Purl back along the wrong side, keeping the tension even.",
                      "Repeat the last two rows until the piece reaches the length you want.",
                      "Place a marker at each end of this row so that the side seams line up.")
# A teacher's end-of-term report, one comment a unit.
_TERM_REPORT_PATTERNS = (
    "{name} has settled in well this term and took real care over the {adj} {noun} project.",
    "{name} must remember to bring the right kit on games days; borrowing {a_noun} every week is "
    "not fair on the others.",
    "Homework has mostly arrived on time, although the piece about the {adj} {noun2} looked "
    "rushed.",
    "{name} works well alongside {name2}, but the two of them chat when they should be listening.",
    "Reading is a real strength: at the moment {name} is enjoying a book about a {adj} {noun}.",
    "Attendance this term: {present} sessions out of a possible {possible}.",
    "Next term {name} should aim to check answers before handing them in.",
    "In science, {name} built a {adj} model of {a_noun} that the whole class admired.",
    "{name}'s handwriting has come on, though words like \"{noun2}\" still need practice.",
    "Form tutor: {name} is a cheerful presence in the form room and never too busy to help {name2} "
    "with the {noun}.",
)
# The index at the back of a book, one entry or sub-entry a line.
_BOOK_INDEX_PATTERNS = (
    "{noun}, {pages}",
    "{noun}, {pages}; see also {noun2}",
    "{noun}, {adj}, {pages}",
    "    {adj}, {pages}",
    "    and the {noun2}, {pages}",
    "    in {name}'s letters, {pages}",
    "{noun}: see {noun2}",
    "{name}, {pages} (illus.)",
    "{name}, on the {noun}, {pages}",
)
# A database migration script, one line a unit.
_MIGRATION_PATTERNS = (
    "BEGIN;",
    "CREATE TABLE {noun} (",
    "    {noun}_id INTEGER PRIMARY KEY,",
    "    {adj}_{noun2} VARCHAR({width}) NOT NULL,",
    "    {noun2}_notes TEXT DEFAULT '',",
    ");",
    "ALTER TABLE {noun} ADD COLUMN {adj}_since DATE;",
    "CREATE INDEX idx_{noun}_{noun2} ON {noun} ({noun2}_id);",
    "UPDATE {noun} SET {adj} = FALSE WHERE {noun2}_id = {n};",
    "-- {name}: backfill the {adj} {noun2} rows before this goes out",
    "INSERT INTO {noun} (label, {noun2}_id) VALUES ('{Adj} {Noun}', {n});",
    "DELETE FROM {noun2} WHERE {adj}_since IS NULL;",
    "SELECT {noun}_id, count(*) FROM {noun2} GROUP BY 1 HAVING count(*) > {d};",
    "COMMIT;",
)


def _term_report(rng: random.Random, i: int) -> str:
    cast = _cast(rng, words.BLIND5_ADJECTIVES, words.BLIND5_NOUNS, words.BLIND5_NAMES)
    possible = rng.choice((112, 118, 124, 130, 136))
    return rng.choice(_TERM_REPORT_PATTERNS).format(
        **cast, possible=possible, present=possible - rng.randint(0, 16))


def _book_index(rng: random.Random, i: int) -> str:
    adj = rng.choice(words.BLIND5_ADJECTIVES)
    noun, noun2 = rng.sample(words.BLIND5_NOUNS, 2)
    first = rng.randint(3, 460)
    last = first + rng.randint(1, 9)
    pages = rng.choice((f"{first}", f"{first}–{last}", f"{first}, {last}",
                        f"{first}, {last}–{last + rng.randint(1, 5)}",
                        f"{first}, {last}, {rng.randint(last + 1, 480)}"))
    return rng.choice(_BOOK_INDEX_PATTERNS).format(
        adj=adj, noun=noun, noun2=noun2, name=rng.choice(words.BLIND5_NAMES), pages=pages)


def _migration(rng: random.Random, i: int) -> str:
    adj, (noun, noun2) = rng.choice(words.BLIND5_ADJECTIVES), rng.sample(words.BLIND5_NOUNS, 2)
    return rng.choice(_MIGRATION_PATTERNS).format(
        adj=adj, Adj=adj.capitalize(), noun=noun, noun2=noun2, Noun=noun.capitalize(),
        name=rng.choice(words.BLIND5_NAMES), n=rng.randint(1, 999), d=rng.randint(1, 9),
        width=rng.choice((16, 32, 40, 64, 80, 120, 255)))



# -- the blind6 split's sources (layouts.py), one of each category, over the blind6 words --------
BREATHING_SENTENCES = (
    "Settle into a comfortable seat and let your eyes close if that feels right.",
    "Breathe in slowly through the nose while you count to four.",
    "Hold the breath softly at the top, without straining.",
    "Let it go through the mouth, as slowly as it came in.",
    "Notice where your body meets the chair and let that place grow heavy.",
    "If your mind wanders off, just guide it back to the breath.",
)
# A sailing ship's log, one entry a unit.
_SHIPS_LOG_PATTERNS = (
    "Wind backed westerly during the forenoon watch; {name} took in a reef without being asked.",
    "Sighted {a_noun} adrift off the starboard bow, which {name2} swore looked {adj}.",
    "Glass falling steadily since noon, so all hands were told to lash the {noun} below.",
    "Altered course {deg} degrees to port to give the fishing boats a wide berth.",
    "{name} relieved {name2} at the wheel at the change of watch; nothing further to report.",
    "Made {miles} miles since yesterday noon, a fair run for so {adj} an old hull.",
    "The cook reports the last of the {noun2} gone bad; half rations from tomorrow.",
    "Passed under the {adj} headland at dusk and saw a lamp burning by the {noun}.",
    "Took on fresh water at anchor, {casks} casks in all, with {name} keeping the tally.",
    "Heavy swell all night; the {adj} {noun} in the galley broke loose twice.",
)
# A crossword's clue list, one clue a line.
_CLUE_PATTERNS = (
    "{Adj} {noun} found behind {name}'s shed",
    "Where a {noun} might hide, oddly",
    "{Noun} and {noun2} swapped round",
    "Sounds like a {adj} {noun} in the rain",
    "{name} turns up in a {adj} mood",
    "Not quite a {noun}, but close",
    "Half a {noun2} before the {adj} one",
)
# A BASIC program listing, one numbered line a unit.
_BASIC_PATTERNS = (
    "REM {adj} {noun} routine, {name} wrote this",
    "LET {v} = {n}",
    'PRINT "{Adj} {noun2} ready"',
    "IF {v} > {d} THEN GOTO {target}",
    "FOR J = 1 TO {d}: GOSUB {target}: NEXT J",
    'INPUT "{Noun} count"; {v}',
    "DIM {v}({d})",
    'PRINT "{name} says the {noun} is {adj}"',
    "RETURN",
    "CLS",
)


def _ships_log(rng: random.Random, i: int) -> str:
    cast = _cast(rng, words.BLIND6_ADJECTIVES, words.BLIND6_NOUNS, words.BLIND6_NAMES)
    return rng.choice(_SHIPS_LOG_PATTERNS).format(
        **cast, deg=rng.randint(5, 90), miles=rng.randint(40, 220), casks=rng.randint(3, 40))


def _crossword(rng: random.Random, i: int) -> str:
    adj = rng.choice(words.BLIND6_ADJECTIVES)
    noun, noun2 = rng.sample(words.BLIND6_NOUNS, 2)
    number, direction = rng.randint(1, 30), rng.choice(("Across", "Down"))
    if rng.random() < 0.1:
        return f"{number} {direction}. See {rng.randint(1, 30)} {rng.choice(('Across', 'Down'))}"
    clue = rng.choice(_CLUE_PATTERNS).format(
        adj=adj, Adj=adj.capitalize(), noun=noun, Noun=noun.capitalize(), noun2=noun2,
        name=rng.choice(words.BLIND6_NAMES))
    first = rng.randint(3, 9)
    enumeration = rng.choice((f"{first}", f"{first},{rng.randint(2, 6)}",
                              f"{first}-{rng.randint(3, 5)}"))
    return f"{number} {direction}. {clue} ({enumeration})"


def _basic(rng: random.Random, i: int) -> str:
    adj, (noun, noun2) = rng.choice(words.BLIND6_ADJECTIVES), rng.sample(words.BLIND6_NOUNS, 2)
    line = rng.choice(_BASIC_PATTERNS).format(
        adj=adj, Adj=adj.capitalize(), noun=noun, noun2=noun2, Noun=noun.capitalize(),
        name=rng.choice(words.BLIND6_NAMES), v=noun[:2].upper(), n=rng.randint(1, 999),
        d=rng.randint(2, 9), target=10 * rng.randint(1, 99))
    return f"{10 * (i % 99 + 1)} {line}"


# -- the blind7 split's sources (layouts.py), one of each category, over the blind7 words --------
# A planetarium show's narration, looped.
PLANETARIUM_SENTENCES = (
    "Let your eyes get used to the dark for a moment before we begin our tour of tonight's sky.",
    "Low over the eastern horizon, the hunter is starting his slow climb towards the dome's "
    "centre.",
    "That faint grey smudge beside my pointer is a whole galaxy, its light older than any sea.",
    "Now follow the pointer along the curving handle of the plough until it meets a bright "
    "orange star.",
    "Notice how the stars close to the pole never set; all night they only wheel around it.",
    "In a few moments the dome will brighten again, as gently as a real dawn would.",
)
# An auction house's catalogue, one lot description a unit.
_AUCTION_PATTERNS = (
    "A {adj} {noun} in its original case, said to have come from the estate of {name}.",
    "The {noun} offered here was once shown by {name} and has a {adj} patina consistent with "
    "its age.",
    "{name}'s {adj} {noun}, with a handwritten label tied to the handle, is sold without reserve.",
    "Bidding on the {noun} opened slowly, but {name} and {name2} soon carried it past the "
    "estimate.",
    "{a_adj} {noun} of uncertain date; compare the example knocked down last spring to {name}.",
    "Accompanied by a letter from {name2} describing the {noun} as unusually {adj}.",
    "Viewing of the {noun} and the {noun2} is by appointment only, in the small saleroom.",
    "Slight wear to the {noun}, otherwise {adj} throughout; provenance traced back to {name}.",
)
# A chess tournament's pairings and results, one board a line.
_OPENING_KINDS = ("Gambit", "Defence", "Attack", "Variation", "Counterattack")
# A LaTeX manuscript's source, one line a unit.
_LATEX_PATTERNS = (
    "\\section{{The {Adj} {Noun}}}",
    "\\label{{sec:{noun}-{noun2}}}",
    "As {name} observed \\cite{{{cite}}}, the {noun} is seldom as {adj} as it first appears.",
    "\\begin{{itemize}}",
    "  \\item {Adj} {noun}, on loan from {name}",
    "\\end{{itemize}}",
    "\\includegraphics[width=0.{w}\\linewidth]{{figures/{noun}}}",
    "% TODO({name}): redraw the {adj} {noun} figure before submission",
    "The {noun2}\\footnote{{Lent to us by {name2}.}} turned out to be {adj} as well.",
    "\\newcommand{{\\{noun}}}{{\\textsc{{{noun}}}}}",
)


def _auction(rng: random.Random, i: int) -> str:
    cast = _cast(rng, words.BLIND7_ADJECTIVES, words.BLIND7_NOUNS, words.BLIND7_NAMES)
    a_adj = ("An " if cast["adj"][0] in "aeiou" else "A ") + cast["adj"]
    text = rng.choice(_AUCTION_PATTERNS).format(**cast, a_adj=a_adj)
    return f"Lot {rng.randint(1, 600)}. {text}"


def _pairings(rng: random.Random, i: int) -> str:
    name, name2 = rng.sample(words.BLIND7_NAMES, 2)
    board = f"Rd {i // 12 % 9 + 1}, Bd {i % 12 + 1}: "
    if rng.random() < 0.08:
        return f"{board}{name}, bye"
    opening = (f"{rng.choice(words.BLIND7_ADJECTIVES).capitalize()} "
               f"{rng.choice(words.BLIND7_NOUNS).capitalize()} {rng.choice(_OPENING_KINDS)}")
    result = rng.choice(("1-0", "0-1", "1/2-1/2", "0-1 (time)", "1-0 (resigned)"))
    return f"{board}{name} - {name2}, {result}, {opening}, {rng.randint(18, 90)} moves"


def _latex(rng: random.Random, i: int) -> str:
    cast = _cast(rng, words.BLIND7_ADJECTIVES, words.BLIND7_NOUNS, words.BLIND7_NAMES)
    return rng.choice(_LATEX_PATTERNS).format(
        **cast, Adj=cast["adj"].capitalize(), Noun=cast["noun"].capitalize(),
        cite=f"{cast['name'].lower()}:{cast['noun']}", w=rng.choice((3, 4, 5, 6, 8, 9)))


FILLERS = {f.name: f for f in (
    Filler("noise", "repeated", " ", _cycle(NOISE_SENTENCES)),
    Filler("refrain", "repeated", " ", _cycle(REFRAIN_SENTENCES)),
    Filler("weather", "repeated", " ", _cycle(WEATHER_SENTENCES)),
    Filler("prose", "prose", " ", lambda rng, i: prose_sentence(rng)),
    Filler("encyclopedia", "prose", " ", _pattern(_ENCYCLOPEDIA_PATTERNS, words.ADJECTIVES,
                                                  words.NOUNS, words.NAMES)),
    Filler("diary", "prose", " ", _pattern(_DIARY_PATTERNS, words.HELDOUT_ADJECTIVES,
                                           words.HELDOUT_NOUNS, words.HELDOUT_NAMES)),
    Filler("inventory", "list", "\n", _inventory),
    Filler("todo", "list", "\n", _todo),
    Filler("table", "list", "\n", _table),
    Filler("recipe", "list", "\n", _recipe),
    Filler("python", "code", "\n", _lines(_PYTHON_PATTERNS, words.NOUNS)),
    Filler("log", "code", "\n", _lines(_LOG_PATTERNS, words.HELDOUT_NOUNS)),
    Filler("json", "code", "\n", _json),
    Filler("bells", "repeated", " ", _cycle(BELL_SENTENCES)),
    Filler("news", "prose", " ", _pattern(_NEWS_PATTERNS, words.BLIND_ADJECTIVES, words.BLIND_NOUNS,
                                          words.BLIND_NAMES)),
    Filler("csv", "list", "\n", _csv),
    Filler("changelog", "code", "\n", _changelog),
    Filler("platform", "repeated", " ", _cycle(PLATFORM_SENTENCES)),
    Filler("sports", "prose", " ", _pattern(_SPORTS_PATTERNS, words.BLIND2_ADJECTIVES,
                                            words.BLIND2_NOUNS, words.BLIND2_NAMES)),
    Filler("receipt", "list", "\n", _receipt),
    Filler("stylesheet", "code", "\n", _stylesheet),
    Filler("legal", "repeated", " ", _cycle(LEGAL_SENTENCES)),
    Filler("minutes", "prose", " ", _pattern(_MINUTES_PATTERNS, words.BLIND3_ADJECTIVES,
                                             words.BLIND3_NOUNS, words.BLIND3_NAMES)),
    Filler("calendar", "list", "\n", _calendar),
    Filler("shell", "code", "\n", _shell),
    Filler("leaflet", "repeated", " ", _cycle(LEAFLET_SENTENCES)),
    Filler("reviews", "prose", " ", _pattern(_REVIEW_PATTERNS, words.BLIND4_ADJECTIVES,
                                             words.BLIND4_NOUNS, words.BLIND4_NAMES)),
    Filler("timetable", "list", "\n", _timetable),
    Filler("settings", "code", "\n", _settings),
    Filler("knitting", "repeated", " ", _cycle(KNITTING_SENTENCES)),
    Filler("termreport", "prose", " ", _term_report),
    Filler("bookindex", "list", "\n", _book_index),
    Filler("migration", "code", "\n", _migration),
    Filler("breathing", "repeated", " ", _cycle(BREATHING_SENTENCES)),
    Filler("shipslog", "prose", " ", _ships_log),
    Filler("crossword", "list", "\n", _crossword),
    Filler("basic", "code", "\n", _basic),
    Filler("planetarium", "repeated", " ", _cycle(PLANETARIUM_SENTENCES)),
    Filler("auction", "prose", " ", _auction),
    Filler("pairings", "list", "\n", _pairings),
    Filler("latex", "code", "\n", _latex),
)}
