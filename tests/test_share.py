"""A run kept and shared: links read back into the controls' values, traces refused when they are not ones,
the standalone replay, the Text box's masks, the kinds of model the app names."""
import json
import re

import pytest

from llada_play import SamplerConfig, TraceRecorder, generate
from llada_play.diffusion.trace import Trace
from llada_play.model.text import encode_prompt
from llada_play.ui.model_kinds import ARITHMETIC, AUTOREGRESSIVE, INSTRUCT, TEXT, kind_of
from llada_play.ui.replay import replay_page
from llada_play.ui.share import Field, link_query, values_from_query
from llada_play.ui.viz import MASK_GLYPH, trace_status, trace_step_html, trace_text

FIELDS = {"prompt": Field("text", "Romeo.\n"), "chat": Field("bool", False),
          "steps": Field("number", 64, 1, 256, whole=True), "temperature": Field("number", 1.0, 0, 2),
          "remasking": Field("choice", "low_confidence", choices=("low_confidence", "random"))}


def test_a_link_gives_back_every_value_it_was_made_of():
    values = {"prompt": "To be, or not & to be?\n", "chat": True, "steps": 12.0, "temperature": 0.35,
              "remasking": "random"}
    query = link_query("Arithmetic (SFT of the default)", values, FIELDS)
    assert "steps=12&" in query and "chat=1" in query  # whole numbers without ".0", booleans as 1
    from urllib.parse import parse_qsl
    model, back, problems = values_from_query(dict(parse_qsl(query, keep_blank_values=True)), FIELDS)
    assert model == "Arithmetic (SFT of the default)" and problems == []
    assert back == {**values, "steps": 12}


@pytest.mark.parametrize("name, text, message", [
    ("steps", "abc", "steps in the link must be a number"),
    ("steps", "1000", "steps in the link is 1000, outside 1 to 256"),
    ("steps", "2.5", "must be a whole number"),
    ("temperature", "nan", "must be a finite number"),
    ("remasking", "<script>", "remasking in the link must be one of low_confidence, random"),
    ("chat", "maybe", "chat in the link must be 1 or 0"),
    ("prompt", "x" * 5000, "prompt in the link is 5000 characters long"),
    ("evil", "1", "'evil' is not a setting of this page"),
])
def test_a_bad_link_value_is_named_and_the_rest_restored(name, text, message):
    model, values, problems = values_from_query({"steps": "8", name: text} if name != "steps" else {name: text},
                                                FIELDS)
    assert len(problems) == 1 and message in problems[0]
    assert name not in values
    if name != "steps":
        assert values["steps"] == 8


@pytest.fixture
def trace(tiny_model, char_tokenizer):
    recorder = TraceRecorder(char_tokenizer, config=SamplerConfig(steps=8, gen_length=16, block_length=8))
    generate(tiny_model, encode_prompt(char_tokenizer, "Hi"), steps=8, gen_length=16, block_length=8,
             temperature=0.0, hooks=[recorder])
    return recorder.trace()


def test_the_text_box_shows_one_glyph_per_mask_and_the_status_counts_steps(trace):
    assert trace_text(trace, 0) == MASK_GLYPH * 16
    after_three = trace_text(trace, 3)
    pieces = {int(k): v for k, v in trace.tokens.items()}
    state = trace.states()[3][trace.prompt_length:]
    # every masked position one glyph, every committed one its text, in canvas order
    assert after_three == "".join(MASK_GLYPH if t == trace.mask_id else pieces[t] for t in state)
    assert after_three.count(MASK_GLYPH) == 16 - 3 * 2
    assert trace_status(trace, 3) == "Step 3 of 8, block 1 of 2."
    assert trace_status(trace, 8) == "Step 8 of 8, block 2 of 2."
    assert trace_status(trace, 0).startswith("Before the first step")


def test_block_bands_and_pins_are_drawn(trace):
    html = trace_step_html(trace, 4, css=False)
    assert html.count('class="lp-block"') == 2 and "block 1" in html and "block 2" in html
    pinned = Trace.from_dict({**trace.to_dict(), "initial": [trace.initial[0][:3] + [trace.steps[0].commits[0][2]]
                                                              + trace.initial[0][4:]]})
    assert 'class="lp-tok lp-pinned' in trace_step_html(pinned, 0, css=False) and "lp-pinned" not in html


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("initial"), "it has no initial"),
    (lambda d: d.update(surprise=1), "unknown fields surprise"),
    (lambda d: d.update(block_length="8"), "block_length must be a whole number"),
    (lambda d: d["initial"][0].pop(), "every row must hold"),
    (lambda d: d["steps"][2]["commits"].append([0, 999, 5, 0.5, 0.5]), "trace step 3: commits names row 0, position 999"),
    (lambda d: d["steps"][0].update(commits=[[0, 1]]), "trace step 1: each of commits must be a list of 5 items"),
    (lambda d: d["steps"].append("step"), "trace step 9: expected an object"),
])
def test_a_trace_that_is_not_one_is_refused_in_one_line(trace, change, message):
    data = json.loads(trace.to_json())
    change(data)
    with pytest.raises(ValueError, match=re.escape(message)):
        Trace.from_dict(data)
    with pytest.raises(ValueError, match="not JSON"):
        Trace.from_json("{not json")


def test_the_replay_page_holds_every_step_and_nothing_from_outside(trace):
    page = replay_page(trace, title="A <test> run")
    frames = json.loads(re.search(r"const FRAMES = (\[.*?\]);\n", page, re.S).group(1).replace("<\\/", "</"))
    assert len(frames) == 9 and frames[-1] == trace_step_html(trace, 8, css=False)
    assert "A &lt;test&gt; run" in page and "</script>" not in page.split("<script>")[1].split("</script>")[0]
    assert not re.search(r"(src|href)=\"?https?:", page) and "cdn" not in page.lower()


def test_the_kind_of_a_model_is_named_from_its_name_or_training(tmp_path):
    assert kind_of("Shakespeare, diffusion (default)", None, False) is TEXT
    assert kind_of("Arithmetic (SFT of the default)", None, False) is ARITHMETIC
    assert kind_of(None, tmp_path, True) is AUTOREGRESSIVE
    assert kind_of(None, tmp_path / "LLaDA-8B-Instruct", False) is INSTRUCT
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"objective": "sft"}))
    assert kind_of(None, tmp_path / "run" / "final", False) is INSTRUCT
    (tmp_path / "run" / "summary.json").write_text("{broken")
    assert kind_of(None, tmp_path / "run" / "final", False) is TEXT
