import pytest
import torch

from llada_play.experiments.reversal import answer_matches, infilling_accuracy, ranking_accuracy, generation_accuracy
from llada_play.experiments.reversal_data import Fact
from tests.conftest import TableModel, oracle_table


@pytest.mark.parametrize("generated,answer,ok", [
    (" Daphne Barrington.", " Daphne Barrington", True),
    ("Daphne  Barrington is", "Daphne Barrington", True),
    (" Daphne Barringtonia", " Daphne Barrington", False),
    (" Daphne", " Daphne Barrington", False),
    ("", " x", False),
    ('"The Amber Orchard".', ' "The Amber Orchard"', True),
])
def test_answer_matching(generated, answer, ok):
    assert answer_matches(generated, answer) is ok


class Oracle(TableModel):
    """A masked LM that knows one fixed text by position, for hand-made scoring cases."""

    def __init__(self, tokenizer, text, vocab):
        ids = tokenizer(text, add_special_tokens=False).input_ids
        super().__init__(oracle_table(ids + [tokenizer.eos_token_id] * 40, vocab), tokenizer.mask_token_id)
        self.config.causal = False


def test_generation_and_infilling_on_a_model_that_knows_the_sentence(char_tokenizer):
    text = "ab is cd."
    model = Oracle(char_tokenizer, text, len(char_tokenizer))
    rows = [{"prompt": "ab is", "completion": " cd"}]
    assert generation_accuracy(model, char_tokenizer, rows, causal=False) == 1.0
    assert generation_accuracy(model, char_tokenizer, [{"prompt": "ab is", "completion": " ce"}], causal=False) == 0.0
    assert infilling_accuracy(model, char_tokenizer, [Fact("ab", "cd", "p2d")]) == 1.0
    assert infilling_accuracy(model, char_tokenizer, [Fact("ba", "cd", "p2d")]) == 0.0


def test_ranking_prefers_the_answer_the_model_knows(char_tokenizer):
    model = Oracle(char_tokenizer, "ab is cd", len(char_tokenizer))
    pool = [" cd", " ef", " gh", " ij", " kl"]
    right = [{"prompt": "ab is", "completion": " cd"}]
    wrong = [{"prompt": "ab is", "completion": " ef"}]
    assert ranking_accuracy(model, char_tokenizer, right, causal=False, distractors=4, mc_samples=8, pool=pool) == 1.0
    assert ranking_accuracy(model, char_tokenizer, wrong, causal=False, distractors=4, mc_samples=8, pool=pool) == 0.0
    with pytest.raises(ValueError, match="need more than 4 distinct completions"):
        ranking_accuracy(model, char_tokenizer, right, causal=False, distractors=4)


def test_causal_ranking_uses_exact_likelihoods(char_tokenizer):
    from llada_play import LladaForMaskedLM, config_from_preset
    from llada_play.experiments.reversal import completion_score
    from llada_play.model.tokenizer import special_token_ids
    torch.manual_seed(0)
    model = LladaForMaskedLM(config_from_preset("tiny", causal=True, **special_token_ids(char_tokenizer))).eval()
    a = completion_score(model, char_tokenizer, "ab is", " cd", causal=True)
    b = completion_score(model, char_tokenizer, "ab is", " cd", causal=True)
    assert a == b < 0


class StartOracle(TableModel):
    """Knows one sentence that follows an end-of-text, the way sentences sit in packed training data."""

    def __init__(self, tokenizer, text, vocab):
        ids = [tokenizer.eos_token_id] + tokenizer(text, add_special_tokens=False).input_ids
        super().__init__(oracle_table(ids + [tokenizer.eos_token_id] * 40, vocab), tokenizer.mask_token_id)
        self.config.causal = False


def test_sentence_start_prefixes_end_of_text(char_tokenizer):
    model = StartOracle(char_tokenizer, "ab is cd.", len(char_tokenizer))
    rows = [{"prompt": "ab is", "completion": " cd"}]
    assert generation_accuracy(model, char_tokenizer, rows, causal=False, sentence_start=True) == 1.0
    # without the prefix every position is off by one, and the oracle no longer answers
    assert generation_accuracy(model, char_tokenizer, rows, causal=False) == 0.0
    assert infilling_accuracy(model, char_tokenizer, [Fact("ab", "cd", "p2d")], sentence_start=True) == 1.0


def test_infilling_by_ranking_picks_the_name_the_model_knows(char_tokenizer):
    from llada_play.experiments.reversal import infilling_ranking_accuracy

    model = StartOracle(char_tokenizer, "ab is cd.", len(char_tokenizer))
    names = ["ab", "ef", "gh", "ij", "kl"]
    assert infilling_ranking_accuracy(model, char_tokenizer, [Fact("ab", "cd", "p2d")], causal=False,
                                      distractors=4, mc_samples=8, names=names) == 1.0
    # asked about a sentence it does not know (another name is true), the known name still wins, so it is wrong
    assert infilling_ranking_accuracy(model, char_tokenizer, [Fact("ef", "cd", "p2d")], causal=False,
                                      distractors=4, mc_samples=8, names=names) == 0.0
    with pytest.raises(ValueError, match="distinct names"):
        infilling_ranking_accuracy(model, char_tokenizer, [Fact("ab", "cd", "p2d")], causal=False, names=names[:3])


def test_batched_answers_equal_one_by_one_answers(char_tokenizer, tiny_model):
    rows = [{"prompt": "ab is", "completion": " cd"}, {"prompt": "a much longer prompt is", "completion": " x"},
            {"prompt": "b", "completion": " long answer"}]
    for causal in (False, True):
        tiny_model.config.causal = causal
        _, alone = generation_accuracy(tiny_model, char_tokenizer, rows, causal, sentence_start=True, batch_size=1,
                                       return_answers=True)
        _, together = generation_accuracy(tiny_model, char_tokenizer, rows, causal, sentence_start=True,
                                          batch_size=3, return_answers=True)
        assert together == alone and len(set(alone)) > 1
