import html
import json

import pytest
from gradio_client import Client

from llada_play.model.checkpoint import load_model, save_model
from llada_play.diffusion.sampling import generate
from llada_play.model.text import decode_generation, encode_prompt
from tests.browser import APP_DTYPE, running_app


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    import torch
    from llada_play import LladaForMaskedLM, config_from_preset
    from llada_play.model.tokenizer import build_char_tokenizer, special_token_ids
    from tests.conftest import ALPHABET

    tokenizer = build_char_tokenizer(ALPHABET)
    torch.manual_seed(3)
    model = LladaForMaskedLM(config_from_preset("tiny", **special_token_ids(tokenizer)))
    path = save_model(model, tokenizer, tmp_path_factory.mktemp("m") / "model")
    models = tmp_path_factory.mktemp("models")
    reversal = json.dumps(REVERSAL_TINY)
    with running_app("--model", str(path), "--models-dir", str(models), "--reversal-overrides", reversal) as url:
        yield url, path


REVERSAL_TINY = dict(preset="tiny", steps=4, people_per_subset=5, seeds=[0], eval_rows=3, mc_samples=4, batch_size=4,
                     seq_len=32, warmup=2)

ARGS = dict(prompt_text="To be", chat_mode=False, pins="", gen_len=16, n_steps=8, block_len=8, temp=0.7, cfg=0.0,
            strategy="low_confidence", thresh=0.0, seed_value=11)


def test_denoise_streams_every_step_and_matches_the_library(app_url):
    url, path = app_url
    client = Client(url, verbose=False)
    job = client.submit(*ARGS.values(), api_name="/denoise")
    list(job)  # wait for the end of the stream
    outputs = job.outputs()
    final = outputs[-1]
    step_updates = [o for o in outputs if o[0].startswith("Step ")]
    # the first step at once, then frames at the page's pace (live.paced); every step is recorded for the slider
    assert step_updates and step_updates[0][0].startswith("Step 1 of 8, block 1 of 2: ")
    assert step_updates[0][0].endswith(" masks committed")  # with the run's count (no revisions asked for)
    assert final[3] == {"visible": True, "__type__": "update", "maximum": 8, "value": 8}
    model, tokenizer = load_model(path, dtype=APP_DTYPE)
    prompt = encode_prompt(tokenizer, ARGS["prompt_text"])
    out = generate(model, prompt, steps=8, gen_length=16, block_length=8, temperature=0.7, seed=11)
    assert final[2] == decode_generation(tokenizer, out[0], prompt.shape[1])
    assert final[0].startswith("Done: 8 steps")


def test_bad_input_shows_the_library_message(app_url):
    url, _ = app_url
    client = Client(url, verbose=False)
    bad = {**ARGS, "gen_len": 16, "block_len": 12}
    with pytest.raises(Exception, match=r"gen_length \(16\) must be divisible by block_length \(12\)"):
        client.predict(*bad.values(), api_name="/denoise")
    with pytest.raises(Exception, match="the prompt is empty"):
        client.predict(*{**ARGS, "prompt_text": "  "}.values(), api_name="/denoise")


def _table_rows(table) -> list[list]:
    return table["data"] if isinstance(table, dict) else table


def test_compare_shows_passes_and_time_with_the_cache(app_url):
    url, _ = app_url
    client = Client(url, verbose=False)
    off = [False, "low_confidence", 8, 8, 0.0, "none", False]
    values = ([True, "low_confidence", 8, 8, 0.0, "none", False] + [True, "low_confidence", 8, 8, 0.0, "dual", False]
              + [True, "low_confidence", 8, 8, 0.5, "prefix", True] + off)
    table, _ = client.predict("To be", False, 16, 0.0, 0, *values, api_name="/compare")
    rows = _table_rows(table)
    assert [r[0].split(":")[0] for r in rows] == ["1", "2", "3"]
    assert "cache dual" in rows[1][0] and "early exit" in rows[2][0]
    assert rows[0][1] == "8 (0)" and rows[1][1] == "8 (6)"  # a full pass opens each block, then windows
    assert all(r[4] == "0 / 0" for r in rows)  # no second thoughts asked for
    plain = [True, "low_confidence", 8, 8, 0.0, "none", False]
    thoughts = ["remask loop, eta 0.2", "edit at p >= 0.9", "off", "off"]  # after every row's components
    table, _ = client.predict("To be", False, 16, 0.0, 0, *plain, *plain, *off, *off, *thoughts, api_name="/compare")
    rows = _table_rows(table)
    assert "remask loop, eta 0.2" in rows[0][0] and "edit at p >= 0.9" in rows[1][0]
    assert int(rows[0][4].split(" / ")[0]) > 0  # the loop phase sends tokens back and refills them
    table, _ = client.predict(0.0, 0, *values, api_name="/task_accuracy")
    rows = _table_rows(table)
    assert len(rows) == 3 and all("accuracy" in r[3] and "tokens/s" in r[3] for r in rows)
    assert rows[0][1] == "8 (0)" and rows[1][1] == "8 (4)"  # 32 tokens in 4 blocks of 8, 2 steps per block


def test_step_mode_pauses_and_takes_a_token_by_hand(app_url):
    import re
    url, _ = app_url
    client = Client(url, verbose=False)
    status, canvas, _text = client.predict(*ARGS.values(), api_name="/step_start")
    assert status.startswith("Paused after step 1")
    status, canvas, _text = client.predict(api_name="/step_next")
    assert status.startswith("Paused after step 2")
    position = int(re.search(r'lp-mask" data-pos="(\d+)"', canvas).group(1))
    status, canvas, _ = client.predict(str(position), None, "Q", api_name="/step_commit")
    assert f"at position {position} by hand" in status
    status, canvas, text = client.predict(api_name="/step_finish")
    assert status.startswith("Finished after 8 steps")  # the schedule absorbs the hand-made token
    assert "lp-forced" in canvas and "Q" in text


def test_quick_sft_streams_the_loss_and_switches_the_model(app_url, tmp_path):
    import time

    from gradio_client import handle_file
    url, _ = app_url
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"{a}+{a}=", "response": str(2 * a)}) + "\n" for a in range(20)))
    client = Client(url, verbose=False)
    job = client.submit(handle_file(str(rows)), 20, 1e-3, 8, 0, api_name="/quick_sft")
    list(job)
    outputs = job.outputs()
    assert any(o[0].startswith("Step ") for o in outputs)
    final_status, _plot, info = outputs[-1]
    assert final_status.startswith("Done: 20 steps") and "app-sft" in info

    # cancel: a long run stops after the current step
    job = client.submit(handle_file(str(rows)), 2000, 1e-3, 8, 0, api_name="/quick_sft")
    deadline = time.time() + 60
    while time.time() < deadline and not any(o[0].startswith("Step ") for o in job.outputs()):
        time.sleep(0.2)
    client.predict(api_name="/cancel_sft")
    list(job)
    status = job.outputs()[-1][0]
    assert status.startswith("Done (cancelled)")
    # the half-trained model waits for a choice, named in words: the session keeps the model it had
    assert "Keep this half-trained model, or keep the previous one (Quick SFT on `rows.jsonl`, 20 steps)?" in status
    kept = client.predict(api_name="/sft_keep_previous")
    assert kept.startswith("Kept the previous model (Quick SFT on `rows.jsonl`, 20 steps).")
    with pytest.raises(Exception, match="No half-trained model is waiting"):
        client.predict(api_name="/sft_use_half_trained")


def test_chat_keeps_the_history_and_strips_end_of_text(app_url):
    url, _ = app_url
    client = Client(url, verbose=False)
    history, box, _canvas = client.predict("Hi", [], 16, 8, 8, 0.0, 0.0, "low_confidence", 0.0, 0, api_name="/chat")
    assert [m["role"] for m in history] == ["user", "assistant"] and box == ""
    assert "<|endoftext|>" not in str(history[-1]["content"]) and "<|eot_id|>" not in str(history[-1]["content"])
    history, _, _ = client.predict("Again", history, 16, 8, 8, 0.0, 0.0, "low_confidence", 0.0, 0, api_name="/chat")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    with pytest.raises(Exception, match="the message is empty"):
        client.predict(" ", history, 16, 8, 8, 0.0, 0.0, "low_confidence", 0.0, 0, api_name="/chat")


def test_eight_concurrent_clients_each_get_their_own_result(app_url):
    from concurrent.futures import ThreadPoolExecutor
    url, path = app_url
    model, tokenizer = load_model(path, dtype=APP_DTYPE)
    prompts = [f"Say {c}" for c in "abcdefgh"]

    def ask(i):
        client = Client(url, verbose=False)
        args = {**ARGS, "prompt_text": prompts[i], "seed_value": i}
        return client.predict(*args.values(), api_name="/denoise")[2]

    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(ask, range(8)))
    for i, text in enumerate(texts):
        prompt = encode_prompt(tokenizer, prompts[i])
        out = generate(model, prompt, steps=8, gen_length=16, block_length=8, temperature=0.7, seed=i)
        assert text == decode_generation(tokenizer, out[0], prompt.shape[1]), i


def test_model_tab_loads_a_directory_and_names_a_bad_one(app_url, tmp_path):
    url, path = app_url
    client = Client(url, verbose=False)
    info, status = client.predict(str(path), api_name="/load_model")
    assert status.startswith("Loaded") and "masked diffusion" in info
    (tmp_path / "broken").mkdir()
    with pytest.raises(Exception, match=r"config\.json is missing"):
        client.predict(str(tmp_path / "broken"), api_name="/load_model")


def test_model_tab_opens_a_llada_checkpoint_natively_without_remote_code(app_url, tmp_path):
    from tests.published_layouts import llada_like_model, llada_tokenizer, write_llada_checkpoint

    url, _ = app_url
    tok = llada_tokenizer()
    path = write_llada_checkpoint(tmp_path / "LLaDA-8B-Instruct-tiny", llada_like_model(tok), tok)
    client = Client(url, verbose=False)  # the app runs without --trust-remote-code; the code files would raise
    info, status = client.predict(str(path), api_name="/load_model")
    assert status.startswith("Loaded") and "llada checkpoint read natively" in info and "mask id" in info


def test_reversal_tab_runs_the_experiment_with_progress_then_answers_questions(app_url):
    url, _ = app_url
    client = Client(url, verbose=False)
    job = client.submit(api_name="/reversal_run")
    list(job)
    outputs = job.outputs()
    progress = [o[0] for o in outputs if "<progress" in str(o[0])]
    assert len(progress) >= 5 and "training" in " ".join(progress)
    final = outputs[-1]
    assert "Done in" in final[0]
    # what the numbers show, in words (the same sentences as notebook 03): one line per model kind and a verdict
    assert "diffusion: trained direction ranking" in final[0] and "autoregressive: trained direction" in final[0]
    assert "=&gt; the diffusion model" in final[0]  # HTML-escaped "=>"
    table = final[1]
    assert table["headers"] == ["metric", "diffusion", "autoregressive"]
    assert "generation/p2d_reverse" in [row[0] for row in table["value"]["data"]]
    examples = [c[0] if isinstance(c, (list, tuple)) else c for c in final[3]["choices"]]
    assert any(e.startswith("p2d_reverse: ") for e in examples)
    # a held-out reverse question, answered by both models (tiny and barely trained: any text is fine)
    question = next(e for e in examples if e.startswith("p2d_reverse: ")).split(": ", 1)[1].split(" | ")[0]
    truth = next(e for e in examples if e.startswith("p2d_reverse: ")).split(" | ")[1]
    job = client.submit(question, truth, api_name="/reversal_ask")
    list(job)
    diffusion, autoregressive, canvas, ranking = job.outputs()[-1]
    assert isinstance(diffusion, str) and isinstance(autoregressive, str) and autoregressive != "n/a"
    assert len(job.outputs()) >= 3  # the denoising streamed step by step
    # the ranking the experiment scores, for this question: the true answer and 4 other people's names
    assert ranking["headers"] == ["candidate (✓ true answer)", "diffusion", "autoregressive"]
    rows = ranking["value"]["data"]
    assert len(rows) == 5 and rows[0][0] == "✓ " + truth and len({r[0] for r in rows}) == 5
    for column in (1, 2):  # one choice per model, every score a log-likelihood per token
        assert sum("★" in r[column] for r in rows) == 1
        assert all(float(r[column].rstrip(" ★")) < 0 for r in rows)
    # a question typed by hand has no true answer to rank against: the table says so
    *_, ranking = client.predict(question, "", api_name="/reversal_ask")
    assert "pick a held-out question" in ranking["label"] and not ranking["value"]["data"]
    with pytest.raises(Exception, match="the question is empty"):
        client.predict("  ", "", api_name="/reversal_ask")


def test_reversal_tab_names_recorded_results_relative_to_the_project(app_url):
    from llada_play.ui.paths import ROOT

    url, _ = app_url
    client = Client(url, verbose=False)
    dropdown = next(c["props"] for c in client.config["components"]
                    if c.get("type") == "dropdown" and c["props"].get("label") == "Recorded result")
    names = [choice[0] for choice in dropdown["choices"]]
    assert names[0] == dropdown["value"] == "data/reversal/results/long.json" and str(ROOT) not in str(dropdown)
    status, *_ = client.predict("data/reversal/results/full.json", api_name="/reversal_load")
    assert "Loaded data/reversal/results/full.json: " in status and str(ROOT) not in status
    # the full run's models were not kept (only long.json's first seed ships its pair): asking says so
    with pytest.raises(Exception, match="models were not kept"):
        client.predict("Who is the one known as a lighthouse keeper?", "", api_name="/reversal_ask")


def test_reversal_tab_refuses_a_file_that_is_not_a_result(app_url, tmp_path):
    url, _ = app_url
    client = Client(url, verbose=False)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(Exception, match="not a reversal results file"):
        client.predict(str(bad), api_name="/reversal_load")


def test_model_tab_lists_the_shipped_models_by_name_and_loads_one(app_url):
    from llada_play.model.checkpoint import SHIPPED_MODELS

    url, _ = app_url
    client = Client(url, verbose=False)
    dropdown = next(c["props"] for c in client.config["components"]
                    if c.get("type") == "dropdown" and c["props"].get("label") == "Model")
    offered = [choice[1] if isinstance(choice, (list, tuple)) else choice for choice in dropdown["choices"]]
    assert offered[0] == "shipped default" and dropdown["value"] == "shipped default"
    assert offered[1:1 + len(SHIPPED_MODELS)] == list(SHIPPED_MODELS)  # the shipped names next, in table order
    for name in ("Shakespeare, diffusion (default)", "Arithmetic (SFT of the default)",
                 "Sudoku 6x6, diffusion (seed 0)", "Sudoku 6x6, autoregressive twin (seed 0)"):
        assert name in SHIPPED_MODELS and name in offered
    info, status = client.predict("Arithmetic (SFT of the default)", api_name="/load_model")
    assert status.startswith("Loaded `Arithmetic (SFT of the default)`")
    assert "Arithmetic (SFT of the default)" in info and "arithmetic_model" in info and "masked diffusion" in info
    with pytest.raises(Exception, match="does not exist"):  # a name that is not shipped is taken as a path
        client.predict("Puzzle, no such model", api_name="/load_model")


def cells(grid_html: str, css_class: str) -> int:
    """How many cells of a drawn grid carry ``css_class``."""
    import re

    return len(re.findall(rf"<td class='[^']*\b{css_class}\b", grid_html))


def test_puzzle_tab_streams_both_attempts_and_matches_the_library(app_url):
    """The shipped Sudoku pair through the app: one streamed frame per step, and the same end as the library."""
    from llada_play.experiments.puzzle import solver_config
    from llada_play.experiments.puzzle_replay import solve_live, twin_attempt
    from llada_play.experiments.sudoku import check_puzzle
    from llada_play.model.checkpoint import SHIPPED_MODELS
    from llada_play.ui.tabs.puzzle import DIFFUSION_NAME, TWIN_NAME

    url, _ = app_url
    client = Client(url, verbose=False)
    givens, note = client.predict(api_name="/puzzle_new")
    puzzle = check_puzzle(givens, 6)
    assert f"{puzzle.blanks} open cells" in note and len(givens.splitlines()) == 6
    job = client.submit(givens, "margin", 36, 0, api_name="/puzzle_solve")
    list(job)
    outputs = job.outputs()
    assert len(outputs) == puzzle.blanks + 2  # the givens alone, one frame per open cell, then the outcome
    assert cells(outputs[0][0], "lp-given") == 36 - puzzle.blanks and cells(outputs[0][0], "lp-guess") == 0
    assert cells(outputs[1][0], "lp-now") == 1 and cells(outputs[1][0], "lp-guess") == puzzle.blanks - 1
    diffusion, twin_model = (load_model(SHIPPED_MODELS[name], dtype=APP_DTYPE) for name in (DIFFUSION_NAME, TWIN_NAME))
    mine = solve_live(*diffusion, puzzle, solver_config(6, "margin", puzzle.blanks))
    twin = twin_attempt(*twin_model, puzzle)
    assert outputs[-1][2] == f"**Diffusion:** {mine.summary()}.  **Twin:** {twin.summary()}."
    assert cells(outputs[-1][0], "lp-wrong") == len(mine.wrong) and cells(outputs[-1][1], "lp-wrong") == len(twin.wrong)
    # fewer steps than open cells: several cells a step
    job = client.submit(givens, "low_confidence", 5, 0, api_name="/puzzle_solve")
    list(job)
    assert len(job.outputs()) == 5 + 2


def test_puzzle_second_thoughts_streams_the_model_that_edits_with_and_without_edits(app_url):
    """The switch loads the rule's puzzle (found in the app's dtype), and the endpoint streams the library's run
    with edits beside the one without: same end, same edits, framed and with their history."""
    from llada_play.experiments.puzzle import PuzzleConfig, held_out
    from llada_play.experiments.puzzle_replay import fast_config, first_repaired, solve_live
    from llada_play.experiments.sudoku import check_puzzle
    from llada_play.model.checkpoint import SHIPPED_MODELS
    from llada_play.ui.tabs.puzzle import EDITING_NAME, shipped_results

    url, _ = app_url
    client = Client(url, verbose=False)
    *_, givens, note = client.predict(True, api_name="/puzzle_second_thoughts_switch")
    model, tokenizer = load_model(SHIPPED_MODELS[EDITING_NAME], dtype=APP_DTYPE)
    found = first_repaired(model, tokenizer, held_out(PuzzleConfig.from_dict(shipped_results()["config"]), 100))
    puzzle = check_puzzle(givens, 6)
    assert puzzle == found.revised.puzzle and f"Held-out puzzle #{found.index} " in note
    job = client.submit(givens, 0.9, 0.9, 0, api_name="/puzzle_second_thoughts")
    list(job)
    outputs = job.outputs()
    assert len(outputs) == len(found.revised.frames) + 1  # a frame a step, then the outcome
    left, right, status = outputs[-1]
    assert status.startswith(f"**With edits:** {found.revised.summary()}.  **Without:** {found.baseline.summary()}.")
    assert cells(left, "lp-edited") == len({cell for _, cell, *_ in found.revised.revisions}) >= 1
    assert cells(left, "lp-wrong") == 0 and cells(right, "lp-wrong") == len(found.baseline.wrong) >= 1
    step, cell, old, new, p = found.revised.repairs[0]
    assert html.escape(f"{old} -> {new} at step {step}, p {p:.2f}") in left
    # a stricter edit threshold is the library's run at that threshold
    job = client.submit(givens, 0.9, 0.999, 0, api_name="/puzzle_second_thoughts")
    list(job)
    strict = solve_live(model, tokenizer, puzzle, fast_config(6, True, edit_threshold=0.999, edit_steps=2))
    assert job.outputs()[-1][2].startswith(f"**With edits:** {strict.summary()}.")
    for threshold, edit, message in [(0, 0.9, "less than minimum value 0.5"), (0.9, 1.2, "greater than maximum")]:
        with pytest.raises(Exception, match=message):
            client.predict(givens, threshold, edit, 0, api_name="/puzzle_second_thoughts")


@pytest.mark.parametrize("givens, message", [
    ("", "type the givens"),
    ("12345", "a 6x6 grid has 36 cells; this one has 5"),
    ("7" + "_" * 35, r"cell 1 \(row 1, column 1\) is '7'"),
    ("11" + "_" * 34, "contradictory givens: 1 appears twice in row 1"),
    ("_" * 36, "more than one solution"),
    ("12345_" + "_" * 6 + "_____6" + "_" * 18, "no solution"),  # row 1 needs a 6 where column 6 has one
])
def test_puzzle_tab_refuses_bad_givens_with_the_library_message(app_url, givens, message):
    url, _ = app_url
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match=message):
        client.predict(givens, "low_confidence", 36, 0, api_name="/puzzle_solve")


def test_never_write_forbids_words_in_the_denoise_tab_as_in_the_library(app_url):
    url, path = app_url
    client = Client(url, verbose=False)
    model, tokenizer = load_model(path, dtype=APP_DTYPE)
    prompt = encode_prompt(tokenizer, ARGS["prompt_text"])
    free = client.predict(*ARGS.values(), api_name="/denoise")[2]
    common = max(set(free.replace(" ", "")), key=free.count)  # the free run's most frequent character
    steered = client.predict(*ARGS.values(), common, api_name="/denoise")[2]
    assert common not in steered and steered != free
    ids = tokenizer(common, add_special_tokens=False).input_ids
    out = generate(model, prompt, steps=8, gen_length=16, block_length=8, temperature=0.7, seed=11, forbid=ids)
    assert steered == decode_generation(tokenizer, out[0], prompt.shape[1])
    with pytest.raises(Exception, match="not one"):
        client.predict(*ARGS.values(), "To be", api_name="/denoise")


def test_a_logits_hook_named_on_the_command_line_steers_denoise_and_chat(app_url):
    from tests.app_hooks import OPENING_TOKEN, open_blocks_with_a_token
    _, path = app_url
    model, tokenizer = load_model(path, dtype=APP_DTYPE)
    with running_app("--model", str(path), "--logits-hook", "tests.app_hooks:open_blocks_with_a_token") as url:
        client = Client(url, verbose=False)
        text = client.predict(*ARGS.values(), api_name="/denoise")[2]
        history, _, _ = client.predict("Hi", [], 16, 8, 8, 0.0, 0.0, "low_confidence", 0.0, 0, api_name="/chat")
    prompt = encode_prompt(tokenizer, ARGS["prompt_text"])
    out = generate(model, prompt, steps=8, gen_length=16, block_length=8, temperature=0.7, seed=11,
                   logits_hooks=open_blocks_with_a_token)
    assert (out[0, prompt.shape[1]::8] == OPENING_TOKEN).all()
    assert text == decode_generation(tokenizer, out[0], prompt.shape[1])
    # the chat reply went through the shared sampler with the hook too: the library's reply, token for token
    from llada_play.model.text import stop_token_ids
    from llada_play.ui.tabs.chat import plain
    chat = encode_prompt(tokenizer, [{"role": "user", "content": "Hi"}], chat=True)
    reply = generate(model, chat, steps=8, gen_length=16, block_length=8, seed=0, eos_last=True,
                     eos_token_ids=sorted(stop_token_ids(tokenizer)), logits_hooks=open_blocks_with_a_token)
    assert (reply[0, chat.shape[1]::8] == OPENING_TOKEN).all()
    assert plain(history[-1]["content"]) == decode_generation(tokenizer, reply[0], chat.shape[1]).strip()


def test_second_thoughts_in_the_denoise_tab_match_the_library_and_are_drawn(app_url):
    url, path = app_url
    client = Client(url, verbose=False)
    job = client.submit(*ARGS.values(), "", "cap", 0.5, 0.0, api_name="/denoise")
    list(job)
    outputs = job.outputs()
    live = [o[0] for o in outputs if o[0].startswith("Step ")]
    final = outputs[-1]
    model, tokenizer = load_model(path, dtype=APP_DTYPE)
    prompt = encode_prompt(tokenizer, ARGS["prompt_text"])
    out = generate(model, prompt, steps=8, gen_length=16, block_length=8, temperature=0.7, seed=11, remask="cap",
                   remask_eta=0.5)
    assert final[2] == decode_generation(tokenizer, out[0], prompt.shape[1])
    assert live[0].startswith("Step 1 of 8, block 1 of 2: ") and " tokens remasked, 0 edited" in final[0]
    assert "lp-revised" in final[1] and "sent back to the mask at step" in final[1]  # drawn, history on hover
    with pytest.raises(Exception, match=r"remask_eta must be in \(0, 1\]"):
        client.predict(*ARGS.values(), "", "cap", 0.0, 0.0, api_name="/denoise")


def test_step_mode_sends_a_token_back_and_forks_the_run_with_both_branches_scored(app_url):
    import re
    url, _ = app_url
    client = Client(url, verbose=False)
    status, canvas, _text = client.predict(*ARGS.values(), api_name="/step_start")
    committed = int(re.search(r'lp-tok lp-new" data-pos="(\d+)"', canvas).group(1))
    status, canvas, _ = client.predict(str(committed), api_name="/step_send_back")
    assert f"Position {committed} goes back to the mask" in status
    status, canvas, _ = client.predict(api_name="/step_next")
    assert status.startswith("Paused after step 2")
    with pytest.raises(Exception, match="outside the generation"):
        client.predict("0", api_name="/step_send_back")
    position = int(re.search(r'lp-mask" data-pos="(\d+)"', canvas).group(1))
    main_status, _, _, fork_status, fork_canvas, _ = client.predict(str(position), None, "Q", api_name="/step_fork")
    assert main_status.startswith("Paused after step 2") and f"'Q' committed at position {position}" in fork_status
    main_status, _, main_text, fork_status, fork_canvas, fork_text = client.predict(api_name="/step_finish_both")
    assert main_status.startswith("Finished after 8 steps") and "log p(text | prompt) >=" in main_status
    assert fork_status.startswith("Finished after 8 steps") and "log p(text | prompt) >=" in fork_status
    assert "lp-forced" in fork_canvas and "Q" in fork_text and main_text != fork_text


def test_icl_tab_streams_the_slot_and_both_answers_match_the_library(app_url):
    """The shipped few-shot pair through the app: a drawn mapping, the diffusion model's slot streamed step by step
    (two steps at the end of the prompt, one in place before the examples), and both answers the library's."""
    from llada_play.experiments.icl import generated_answers
    from llada_play.experiments.icl_data import own_prompt, parse_examples
    from llada_play.model.checkpoint import SHIPPED_MODELS
    from llada_play.ui.tabs.fewshot import DIFFUSION_NAME, LAYOUTS, TWIN_NAME

    url, _ = app_url
    client = Client(url, verbose=False)
    examples, key, note = client.predict(8, "invented words (fresh)", api_name="/icl_draw")
    pairs, fmt = parse_examples(examples)
    assert len(pairs) == 8 and key in {k for k, _ in pairs} and "8 examples" in note
    diffusion, twin = (load_model(SHIPPED_MODELS[name], dtype=APP_DTYPE) for name in (DIFFUSION_NAME, TWIN_NAME))
    for layout, steps in zip(LAYOUTS, (2, 1)):
        job = client.submit(examples, key, layout, 0, api_name="/icl_ask")
        list(job)
        outputs = job.outputs()
        assert len(outputs) == steps + 1  # a frame per step, then the answers
        assert outputs[0][0].count("lp-tok lp-mask") == steps - 1  # after the first step: the masks still open
        prompt = own_prompt(pairs, key, LAYOUTS[layout], fmt)
        mine = generated_answers(*diffusion, [prompt])[0]
        theirs = generated_answers(*twin, [prompt])[0]
        status = outputs[-1][2]
        assert f"**Diffusion:** {mine or '(nothing)'}" in status and f"**Twin:** {theirs or '(nothing)'}" in status
        assert ("never the examples after it" in status) == (LAYOUTS[layout] == "after")
        assert outputs[-1][3].count("<tr>") == len(prompt.labels) + 1  # a row of bars per label
    with pytest.raises(Exception, match=r"line 2 \('mipo red'\) is not an example"):
        client.predict("dakul -> red\nmipo red", "dakul", "examples, then the question", 0, api_name="/icl_ask")
    with pytest.raises(Exception, match=r"the pair knows the labels red, green"):
        client.predict("dakul -> purple\nmipo -> red", "dakul", "examples, then the question", 0, api_name="/icl_ask")
