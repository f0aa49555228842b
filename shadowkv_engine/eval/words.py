"""Word lists and random symbols for the synthetic tasks, built in so nothing is downloaded.

RULER draws needle keys from the `wonderwords` lists; these short lists play that role (keys are
adjective-noun pairs, 10,000 of them) and also feed the prose haystack. Every draw goes through a
caller's `random.Random`, so a seed fixes the sample.
"""
import random
import string

ADJECTIVES = (
    "able active amber ancient angry bitter black blue bold brave brief bright broad brown calm "
    "careful cheap clean clever cold cool cosmic crisp curious damp dark deep dizzy dry dull eager "
    "early easy empty fancy fast fierce flat fresh friendly frozen gentle giant glad golden grand "
    "green grey happy hard heavy hidden hollow honest huge humble icy jolly kind large lazy light "
    "little lively lonely loud lucky mellow merry mighty modern narrow neat noble odd old pale "
    "plain polite proud purple quick quiet rapid rare red rich rough round royal rusty sharp shiny "
    "short silent silver simple slow small smooth soft solid spare steady"
).split()

NOUNS = (
    "anchor apple arrow badge basket beach bell bicycle blanket boat bottle bridge brush bucket "
    "cabin camera candle canyon carpet castle chair cloud coast comet compass cookie cottage crown "
    "desert diamond dragon drum eagle engine falcon feather fence field flower forest fountain "
    "garden glacier guitar hammer harbor helmet island jacket kettle ladder lamp lantern leaf "
    "lemon library lion magnet maple meadow mirror monkey mountain needle ocean orange otter "
    "painting palace pencil piano pillow planet pocket puzzle rabbit rainbow river rocket saddle "
    "shadow shell ship shoe spoon statue stone storm sun table teapot tiger tower train tulip "
    "tunnel turtle umbrella valley violin wagon whale window wolf"
).split()

VERBS = (
    "admired built carried chased cleaned crossed drew dropped found followed guarded held "
    "joined lifted moved noticed opened painted passed pulled pushed reached repaired saw "
    "shared watched visited washed"
).split()

ADVERBS = (
    "quietly slowly quickly gently carefully happily suddenly proudly calmly bravely softly "
    "eagerly loudly rarely often"
).split()

NAMES = (
    "Anna Ben Clara David Emma Felix Grace Henry Iris Jack Lena Max Nora Oscar Paula Sam Tara "
    "Victor Wendy Yusuf"
).split()

NUM_KEYS = len(ADJECTIVES) * len(NOUNS)


def key(index: int) -> str:
    """The index-th needle key, an adjective-noun pair such as 'brave-lantern'."""
    return f"{ADJECTIVES[index // len(NOUNS)]}-{NOUNS[index % len(NOUNS)]}"


def distinct_keys(rng: random.Random, count: int) -> list[str]:
    return [key(i) for i in rng.sample(range(NUM_KEYS), count)]


def number(rng: random.Random, digits: int) -> str:
    """A number of exactly `digits` digits (no leading zero, so it reads as a number)."""
    return str(rng.randrange(10 ** (digits - 1), 10**digits))


def distinct_numbers(rng: random.Random, count: int, digits: int) -> list[str]:
    return [str(n) for n in rng.sample(range(10 ** (digits - 1), 10**digits), count)]


def variable_names(rng: random.Random, count: int) -> list[str]:
    """Distinct 5-letter uppercase names, as RULER's variable tracking uses."""
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choices(string.ascii_uppercase, k=5))
        if name not in names:
            names.append(name)
    return names


def coded_words(rng: random.Random, count: int, length: int = 6) -> list[str]:
    """Distinct random lowercase 'coded words', as RULER's frequent-word extraction uses."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = "".join(rng.choices(string.ascii_lowercase, k=length))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


# Open-class words that only the held-out split uses (layouts.py): needle keys, people and the
# held-out fillers draw from these, so a held-out prompt names things training never saw.
HELDOUT_ADJECTIVES = (
    "azure crimson dusty elegant faded fuzzy gloomy graceful hasty hazy idle ivory jagged keen "
    "lavish lofty marble misty nimble oaken olive patient pearl plush prickly radiant restless "
    "sandy scarlet shabby sleek snowy sturdy tame tender tidy velvet vivid wary weary"
).split()

HELDOUT_NOUNS = (
    "acorn barrel biscuit blossom cactus canoe carousel chimney cobweb cricket dolphin envelope "
    "ferry fiddle goblet gondola hedgehog igloo jigsaw kayak kite lighthouse lobster mitten "
    "nutmeg oyster parrot pebble quilt raven sapphire scarf sparrow thimble trumpet volcano "
    "walnut windmill yacht zebra"
).split()

HELDOUT_NAMES = (
    "Aisha Bruno Chloe Dmitri Elena Farid Greta Hugo Ines Jonas Keiko Liam Mira Nikolai Olga "
    "Pablo Quinn Rosa Stefan Ulla"
).split()

# Open-class words of the blind split (layouts.py), written after the shipped model was trained
# and not used to steer its data: in no other list and in no made-up word of training.
BLIND_ADJECTIVES = (
    "amused awkward breezy bumpy chilly clumsy cozy creaky crooked dainty drowsy frosty giddy "
    "grumpy itchy jumpy knotty lumpy mossy muddy nosy perky quirky rowdy sleepy soggy spiky "
    "sticky wiry wobbly"
).split()

BLIND_NOUNS = (
    "anvil badger bagpipe beacon bonnet catapult cauldron cobbler crayon dagger easel ferret "
    "gazebo hammock harp jackal kazoo lasso mongoose nugget ostrich paddle pelican pretzel "
    "scooter tambourine trolley trombone walrus wigwam"
).split()

BLIND_NAMES = (
    "Anouk Bastian Carmen Dario Esme Fabian Gwen Hamid Ingrid Joaquin Kaito Leona Matteo Nadia "
    "Oskar Priya Quentin Rasmus Stellan Tove"
).split()

# Open-class words of the blind2 split (layouts.py), written before the model trained on
# training/needle_grammar.py's data existed: in no other list and in no made-up word of training.
BLIND2_ADJECTIVES = (
    "brisk chunky crunchy fluffy frilly glossy gritty hefty jaunty lanky leafy murky nifty "
    "peppery plucky puffy rugged salty scruffy shaggy silky spotty springy stubby tangy toasty "
    "twisty wavy woolly zesty"
).split()

BLIND2_NOUNS = (
    "abacus accordion armadillo banjo beehive buoy chandelier clarinet corkscrew cymbal flamingo "
    "funnel gargoyle hourglass iguana jukebox marionette narwhal octopus pinecone platypus "
    "porcupine rickshaw satchel sundial tapir toboggan toucan wheelbarrow xylophone"
).split()

BLIND2_NAMES = (
    "Amara Bogdan Cosima Desmond Eero Freya Gideon Hana Ivo Jasper Kofi Lucinda Magnus Noor Orla "
    "Pieter Rafaela Soren Thandiwe Vesna"
).split()

# Open-class words of the blind3 split (layouts.py), written on 2026-12-01 after blind2 was read and
# before the next model existed: in no other list and in no made-up word of training.
BLIND3_ADJECTIVES = (
    "bashful blotchy bristly burly cheeky crinkly dimpled feisty flimsy freckled fretful frothy "
    "gangly gawky grubby lopsided mottled nubby pudgy ruddy scraggly sooty speckled squishy "
    "swanky tawny tufted wispy wrinkly zany"
).split()

BLIND3_NOUNS = (
    "albatross bassoon blimp bobsled caboose chameleon cockatoo dulcimer gramophone harmonica "
    "hovercraft kaleidoscope lemur mandolin manatee metronome ocarina okapi pagoda periscope "
    "quokka sextant stethoscope tortoise trampoline ukulele unicycle wombat yak zeppelin"
).split()

BLIND3_NAMES = (
    "Adaeze Bartholomew Celestine Dagny Eamon Fenella Gaspard Hiroko Ignatius Jovana Kwame "
    "Ludmila Mireille Nkechi Osvaldo Perpetua Radomir Saoirse Tiberius Wilhelmina"
).split()

# Open-class words of the blind4 split (layouts.py), written on 2026-12-01 (session 13) after blind3
# was read and before the next model existed: in no other list and in no made-up word of training.
BLIND4_ADJECTIVES = (
    "bedraggled brittle craggy crumbling cumbersome dapper dented dilapidated droopy fickle "
    "flamboyant gilded hushed knobbly leathery mildewed patchy portly ramshackle rickety rumpled "
    "scuffed sheepish spindly sultry tarnished thorny threadbare waterlogged weatherbeaten"
).split()

BLIND4_NOUNS = (
    "anteater aqueduct bellows bobbin catamaran colander cormorant dirigible dumbbell escalator "
    "flagpole gazelle gyroscope hacksaw kingfisher lectern marmot ottoman pheasant pulley quiver "
    "samovar snorkel spatula thermos trellis turnip weathervane wolverine zither"
).split()

BLIND4_NAMES = (
    "Aurelio Bronwen Cyprian Dorota Evangelos Filippa Grigor Halldora Ishaan Jolanta Kalani "
    "Leopold Marisol Nnamdi Oluwaseun Philomena Rosalind Sigrun Teodor Yevgenia"
).split()

# Open-class words of the blind5 split (layouts.py), written on 2026-12-01 (session 14) after blind4
# was read and before the next model existed: in no other list and in no made-up word of training.
BLIND5_ADJECTIVES = (
    "blustery brawny burnished chintzy crusty dowdy gaudy gnarled grimy hoary lacquered lumbering "
    "matted musty pockmarked quilted raggedy rotund sallow scalloped singed sinewy sodden squeaky "
    "tatty tousled varnished wheezy wizened wonky"
).split()

BLIND5_NOUNS = (
    "aardvark anemone armoire artichoke bandstand barnacle bassinet blowtorch bulldozer candelabra "
    "capybara cassowary chinchilla crowbar daffodil dormouse earmuff flugelhorn gherkin hatstand "
    "hornbill kiln ladle lawnmower limpet mousetrap pangolin parsnip porthole salamander"
).split()

BLIND5_NAMES = (
    "Agnieszka Benedikt Caoimhe Demetria Ezekiel Florentyna Gunnhild Horatio Isidora Jaroslav "
    "Kristiina Lorcan Marguerite Octavia Parveen Radhika Seraphina Thaddeus Ximena Zbigniew"
).split()

# Open-class words of the blind6 split (layouts.py), written on 2026-12-01 (session 15) after blind5
# was read, without reading training's parts, and before any model was run on it: in no other list
# and in no made-up word of training.
BLIND6_ADJECTIVES = (
    "brindled chipped dappled dingy dusky flaky flecked fringed fusty gauzy grizzled gummy hulking "
    "inky lacy paunchy pearly plump puckered rosy starchy stocky sulky tasselled tubby velvety "
    "warty waxy whiskery windswept"
).split()

BLIND6_NOUNS = (
    "alpaca beetroot birdbath bonsai candlestick caterpillar cauliflower chestnut crumpet "
    "dandelion doorknob gecko grindstone jellyfish marigold marmoset ocelot puffin pumpkin radish "
    "saucepan scarecrow seahorse sleigh starfish tadpole teacup thistle trowel truffle"
).split()

BLIND6_NAMES = (
    "Anneliese Chidinma Cosimo Eulalia Fionnuala Gwendolyn Hyacinth Jacinta Kwabena Leocadia "
    "Ottoline Quirino Rosamund Svetlana Torvald Ulrika Wenceslas Xiadani Yolanda Zenobia"
).split()

# Open-class words of the blind7 split (layouts.py), written on 2026-12-01 (session 16) after blind6
# was read, without reading training's parts, and before any model was run on it: in no other list,
# in no made-up word of training and in no real-text passage.
BLIND7_ADJECTIVES = (
    "briny burbly buttery chalky chewy clattery crackly crumbly fizzy gingery gloopy gravelly "
    "honeyed jangly lemony malty minty nutty plinky raspy reedy resinous rubbery smoky sudsy "
    "syrupy tinny treacly twangy zingy"
).split()

BLIND7_NOUNS = (
    "barometer brioche cello croissant didgeridoo dumpling glockenspiel harpsichord kumquat "
    "lychee marimba meringue nutcracker oboe persimmon pestle piccolo scone sitar skillet "
    "sousaphone spyglass stapler strudel theremin trivet tuba tureen typewriter waffle"
).split()

BLIND7_NAMES = (
    "Anastasios Benedikta Cassius Dumisani Eustace Folasade Gudrun Hallvard Jurgis Kazimierz "
    "Leopoldine Mstislav Nikodem Odalys Ragnhild Tancredi Ugochi Valdemar Xanthe Zephyrine"
).split()

# Every open-class word that only a held-out split (heldout, blind, blind2, ..., blind7) uses:
# training must not.
HELD_OUT_WORDS = frozenset(HELDOUT_ADJECTIVES + HELDOUT_NOUNS + HELDOUT_NAMES
                           + BLIND_ADJECTIVES + BLIND_NOUNS + BLIND_NAMES
                           + BLIND2_ADJECTIVES + BLIND2_NOUNS + BLIND2_NAMES
                           + BLIND3_ADJECTIVES + BLIND3_NOUNS + BLIND3_NAMES
                           + BLIND4_ADJECTIVES + BLIND4_NOUNS + BLIND4_NAMES
                           + BLIND5_ADJECTIVES + BLIND5_NOUNS + BLIND5_NAMES
                           + BLIND6_ADJECTIVES + BLIND6_NOUNS + BLIND6_NAMES
                           + BLIND7_ADJECTIVES + BLIND7_NOUNS + BLIND7_NAMES)


def alphanumeric(rng: random.Random, length: int) -> str:
    """A short code of capital letters and digits with at least one of each ('K7QX2M')."""
    while True:
        code = "".join(rng.choices(string.ascii_uppercase + string.digits, k=length))
        if any(c.isdigit() for c in code) and any(c.isalpha() for c in code):
            return code
