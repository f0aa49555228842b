import pytest

from shadowkv_engine.eval.sample import Sample, largest_fitting
from shadowkv_engine.eval.scoring import answer_items, is_correct
from shadowkv_engine.eval.tasks import KEY, LOWER_WORD, NUMBER, VARIABLE


def sample(answers, pattern=NUMBER, mode="prefixed", prefix="") -> Sample:
    return Sample("t", 100, 0, "", [], answers, pattern, 8, "", mode=mode, answer_prefix=prefix)


@pytest.mark.parametrize("output, ok", [
    (" 1234567.", True),
    ("1234567", True),
    (" 1234567. The pass key is 7654321.", True),  # only the first item counts
    (" 1234568.", False),
    (" 123456.", False),
    (" 12345678.", False),
    ("", False),
    ("\n1234567", True),  # leading whitespace is not a first line
    (" none\n1234567", False),  # the answer must be on the first line
])
def test_single_answer_is_exact_match(output, ok):
    assert is_correct(output, sample(["1234567"])) is ok


def test_lists_match_in_any_order_but_completely():
    s = sample(["111", "222", "333", "444"])
    assert is_correct(" 444, 222, 111, 333.", s)
    assert not is_correct(" 444, 222, 111.", s)
    assert not is_correct(" 444, 222, 111, 111.", s)
    assert not is_correct(" 444, 222, 111, 555, 333.", s)  # the fourth item given is wrong


def test_multiquery_answer_sentences_are_scored_by_their_values():
    s = sample(["1111111", "2222222"])
    out = " 1111111. One of the special magic numbers for brave-lamp is: 2222222."
    assert is_correct(out, s)
    assert answer_items(out, s) == ["1111111", "2222222"]


@pytest.mark.parametrize("output, ok", [
    ("The pass key is 4821.", True),
    ("4821", True),
    ("The passkey is 4821. Remember it. 4821 is the passkey.", True),
    ("\nThe pass key is 4821", True),
    ("The pass key is 48210.", False),  # whole tokens only
    ("The pass key is K4821.", False),
    ("The pass key is 1234 or 4821.", False),  # the first item is the answer
    ("The pass key is", False),
    ("I do not know.\nThe pass key is 4821.", False),  # the answer must be on the first line
])
def test_free_answer_is_the_first_whole_key_token_of_the_first_line(output, ok):
    assert is_correct(output, sample(["4821"], KEY, "free", "The pass key is")) is ok


def test_free_answer_finds_codes_and_reads_after_an_echoed_prefix():
    code = sample(["K7QX2M"], KEY, "free", "The access code is")
    assert is_correct("The access code is K7QX2M.", code)
    assert not is_correct("The access code is K7QX2MA.", code)
    assert answer_items("Felix's badge code is K7QX2M.", code) == ["K7QX2M"]
    words = sample(["qwerty", "asdfgh", "zxcvbn"], LOWER_WORD, "free",
                   "Answer: According to the coded text above, the three most frequently appeared words are:")
    assert is_correct("Answer: according to the coded text above, the three most frequently "
                      "appeared words are: zxcvbn qwerty asdfgh.", words)
    assert is_correct("qwerty asdfgh zxcvbn", words)
    # The prefixed mode reads the whole first line: the prefix was the prompt's, not the output's.
    assert not is_correct("the three most frequently appeared words are: qwerty asdfgh zxcvbn",
                          sample(["qwerty", "asdfgh", "zxcvbn"], LOWER_WORD))


def test_variables_and_words():
    assert is_correct(" ABCDE FGHIJ.", sample(["FGHIJ", "ABCDE"], VARIABLE))
    assert not is_correct(" ABCDE FGHIJK.", sample(["FGHIJ", "ABCDE"], VARIABLE))
    assert is_correct(" qwerty asdfgh zxcvbn.", sample(["zxcvbn", "qwerty", "asdfgh"], LOWER_WORD))


@pytest.mark.parametrize("guess", [0, 1, 37, 50, 51, 400])
def test_largest_fitting_finds_the_boundary_from_any_guess(guess):
    calls = []

    def tokens(n):
        calls.append(n)
        return 10 + 3 * n

    assert largest_fitting(tokens, 160, guess) == 50
    assert len(calls) < 30


def test_largest_fitting_with_exact_guess_is_cheap():
    calls = []

    def tokens(n):
        calls.append(n)
        return 10 + 3 * n

    largest_fitting(tokens, 160, 50)
    assert len(calls) <= 4


def test_largest_fitting_rejects_fixed_text_over_budget():
    with pytest.raises(ValueError, match="over the budget"):
        largest_fitting(lambda n: 100 + n, 50)
