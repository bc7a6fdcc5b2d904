from pathlib import Path

import pytest

from llada_play.model.checkpoint import save_model
from tests.browser import browser_page, open_tab, require_chromium, running_app

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def model_dir(tiny_model, char_tokenizer, tmp_path):
    return str(save_model(tiny_model, char_tokenizer, tmp_path / "m"))


def test_app_denoises_live_in_the_browser_offline(model_dir, tmp_path):
    """Debian's Chromium, headless, through playwright: click Denoise, see intermediate frames, then the end."""
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app("--model", model_dir, "--models-dir", str(tmp_path)) as url, browser_page() as page:
        external = []
        page.on("request", lambda r: external.append(r.url)
                if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
        page.goto(url)
        page.get_by_label("Steps").first.fill("64")
        page.get_by_role("button", name="Denoise").click()
        frames = set()
        for _ in range(600):
            text = page.locator("body").inner_text()
            if "Done:" in text:
                break
            for line in text.splitlines():
                if line.startswith("Step "):
                    frames.add(line)
            page.wait_for_timeout(25)
        page.get_by_text("Done:").wait_for(timeout=60_000)
        # the text comes first, then the recorded trace's slider and the charts
        page.get_by_text("Step (scrub the recorded run)").wait_for(timeout=30_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        assert len(frames) >= 2, "intermediate steps should be streamed to the page"
        assert page.locator(".lp-canvas .lp-tok").count() >= 64
        assert page.locator(".lp-canvas .lp-mask").count() == 0  # everything committed (the legend has cells too)
        page.screenshot(path=str(ARTIFACTS / "app-denoise.png"), full_page=True)
        assert external == [], f"the page fetched from outside: {external[:3]}"


def test_reversal_tab_loads_a_result_and_asks_both_models_in_the_browser(model_dir, tmp_path):
    """A recorded result (a tiny real run) drawn as a table and a bar chart; a reverse question answered by both
    models while the diffusion model's canvas fills in."""
    from llada_play.experiments.reversal_experiment import ReversalConfig, run_reversal_experiment

    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    run_reversal_experiment(ReversalConfig(out_dir=str(tmp_path / "rev"), people_per_subset=5, steps=4,
                                           preset="tiny", seeds=[0], eval_rows=3, mc_samples=4, batch_size=4,
                                           seq_len=32, warmup=2))
    with running_app("--model", model_dir, "--models-dir", str(tmp_path)) as url, browser_page() as page:
        page.goto(url)
        page.get_by_role("tab", name="Reversal curse").click()
        # opening the tab shows the long run's recorded result at once, named relative to the project
        page.get_by_text("Loaded data/reversal/results/long.json").first.wait_for(timeout=60_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        from llada_play.ui.paths import ROOT
        assert str(ROOT) not in page.locator("body").inner_text()
        page.get_by_role("button", name="Load", exact=True).first.wait_for()
        choice = page.get_by_label("Recorded result")
        choice.fill(str(tmp_path / "rev" / "results.json"))
        choice.press("Enter")
        page.get_by_role("button", name="Load", exact=True).first.click()
        page.get_by_text("Loaded results.json").first.wait_for(timeout=60_000)
        assert page.get_by_text("generation/p2d_reverse").count() >= 1
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # the bar chart is drawn
        # loading picks the first held-out question and fills in the question and its true answer
        question = page.get_by_role("textbox", name="Question", exact=True)
        page.wait_for_function("(el) => el.value.length > 10", arg=question.element_handle(), timeout=30_000)
        page.get_by_role("button", name="Ask both").click()
        page.wait_for_function("document.querySelectorAll('.lp-tok').length >= 8", timeout=60_000)
        page.get_by_text("✓ ").first.wait_for(timeout=60_000)  # the ranking table: the true answer among five
        # each model's choice, starred once (the third star is in the table's caption)
        assert page.evaluate("document.body.innerText.split('★').length - 1") == 3
        page.screenshot(path=str(ARTIFACTS / "app-reversal.png"), full_page=True)
        # a question typed by hand is answered too (no true answer to rank against)
        question.fill("The one who is the first person to map the amber canal is called")
        page.get_by_role("textbox", name="True answer").fill("")
        page.get_by_role("button", name="Ask both").click()
        page.get_by_text("pick a held-out question").first.wait_for(timeout=60_000)


def test_puzzle_second_thoughts_shows_a_wrong_digit_repaired_in_the_browser(model_dir, tmp_path):
    """The "Second thoughts" switch loads the rule's puzzle, runs the model that edits with and without edits, and
    the page shows a red (wrong) digit on the left that an edit turns right, framed blue with its history."""
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app("--model", model_dir, "--models-dir", str(tmp_path)) as url:
        for width in (1400, 800):
            with browser_page(width, 1100) as page:
                page.goto(url)
                open_tab(page, "Puzzle")
                page.get_by_role("checkbox", name="Second thoughts: watch").check()
                page.get_by_text("the first that the model that edits gets wrong").wait_for(timeout=60_000)
                page.get_by_role("button", name="Solve with and without edits").click()
                # while it runs the left grid shows the wrong digit before it is repaired
                page.wait_for_function("document.querySelector('.lp-sudoku')?.querySelector('td.lp-wrong') != null",
                                       timeout=60_000)
                page.screenshot(path=str(ARTIFACTS / f"app-puzzle-second-thoughts-{width}-before.png"), full_page=True)
                page.get_by_text("Repaired: cell").wait_for(timeout=60_000)
                left, right = page.locator(".lp-sudoku").all()
                assert left.locator("td.lp-wrong").count() == 0 and right.locator("td.lp-wrong").count() >= 1
                edited = left.locator("td.lp-edited")
                assert edited.count() >= 1 and " -> " in edited.first.get_attribute("title")
                page.screenshot(path=str(ARTIFACTS / f"app-puzzle-second-thoughts-{width}.png"), full_page=True)


def test_puzzle_tab_fills_the_grid_live_in_the_browser(model_dir, tmp_path):
    """The Sudoku pair in the browser: grey guesses while it runs, the twin beside it, red wrong cells at the
    end, and a clear message for a contradictory grid typed by hand."""
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app("--model", model_dir, "--models-dir", str(tmp_path)) as url, browser_page(1400, 1100) as page:
        page.goto(url)
        page.get_by_role("tab", name="Puzzle").click()
        page.get_by_role("button", name="Solve").click()
        page.wait_for_function("document.querySelectorAll('.lp-sudoku td.lp-guess').length > 0", timeout=60_000)
        page.wait_for_function("document.querySelectorAll('.lp-sudoku').length == 2")
        mid = page.locator(".lp-sudoku").first.locator("td.lp-given").count()
        page.get_by_text("Twin:").wait_for(timeout=60_000)
        assert mid >= 14 and page.locator(".lp-sudoku td.lp-guess").count() == 0  # all committed at the end
        assert page.locator(".lp-sudoku").first.locator("td span.lp-k").count() == 36 - mid  # commit numbers
        page.screenshot(path=str(ARTIFACTS / "app-puzzle.png"), full_page=True)
        givens = page.get_by_label("Givens")
        givens.fill("11" + "_" * 34)
        page.get_by_role("button", name="Solve").click()
        page.get_by_text("contradictory givens: 1 appears twice in row 1").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="New puzzle").click()
        page.wait_for_function("(el) => !el.value.startsWith('11')", arg=givens.element_handle(), timeout=30_000)


def count_in_status(text: str, what: str) -> int:
    """The number before ``what`` ("tokens remasked") in the page's text, 0 if it is not there."""
    import re

    found = re.search(rf"(\d+) {what}", text)
    return int(found.group(1)) if found else 0


def test_denoise_shows_a_revised_cell_with_its_history_in_the_browser():
    """The shipped default model, every control as it is but ReMDM's "cap" remask at a low eta: the run ends
    with a few cells outlined blue whose hover title tells what they were before, the status counts the
    tokens sent back, and a scrubbed frame shows a cell sent back to the mask (dashed) while it waits."""
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app() as url:
        for width in (1400, 800):
            with browser_page(width, 1000) as page:
                page.goto(url)
                open_tab(page, "Denoise")
                page.get_by_label("Second thoughts: remask (ReMDM)").click()
                page.get_by_role("option", name="cap", exact=True).click()
                eta = page.get_by_label("number input for Remasking strength (eta)")
                eta.fill("0.03")
                eta.press("Enter")
                assert page.get_by_label("range slider for Remasking strength (eta)").input_value() == "0.03"
                page.get_by_role("button", name="Denoise", exact=True).click()
                page.get_by_text("Done:").wait_for(timeout=120_000)
                page.get_by_text("Step (scrub the recorded run)").wait_for(timeout=60_000)
                page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
                status = page.get_by_text("Done:").inner_text()
                assert status.startswith("Done: 64 steps") and count_in_status(status, "tokens remasked") > 0, status
                canvas = page.locator(".lp-canvas").filter(visible=True)
                revised = canvas.locator(".lp-tok.lp-revised")
                assert 1 <= revised.count() < 64, f"{revised.count()} cells revised: some, not all, should be"
                title = revised.first.get_attribute("title")
                assert " sent back to the mask at step " in title, title
                assert canvas.locator(".lp-mask").count() == 0
                # the legend beside the canvas names the blue outline
                legend = page.locator(".lp-legend").filter(visible=True)
                assert legend.get_by_text("revised (hover: its history)").count() == 1
                page.screenshot(path=str(ARTIFACTS / f"app-denoise-revised-{width}.png"), full_page=True)
                revised.first.scroll_into_view_if_needed()
                canvas.screenshot(path=str(ARTIFACTS / f"app-denoise-revised-canvas-{width}.png"))
                # scrub back into the first block: a cell sent back to the mask and not yet filled again
                frame = page.get_by_label("number input for Step (scrub the recorded run)")
                for step in (16, 8, 24, 12, 20, 28, 4):
                    before = canvas.inner_html()
                    frame.fill(str(step))
                    frame.press("Enter")
                    page.wait_for_function(  # the scrubbed frame is drawn
                        "before => [...document.querySelectorAll('.lp-canvas')].some("
                        "c => c.offsetParent !== null && c.innerHTML != before)", arg=before, timeout=60_000)
                    if canvas.locator(".lp-mask.lp-remasked").count():
                        break
                remasked = canvas.locator(".lp-mask.lp-remasked")
                assert remasked.count() >= 1, "no cell waits sent back to the mask in the first block's frames"
                assert " sent back to the mask at step " in remasked.first.get_attribute("title")
                canvas.screenshot(path=str(ARTIFACTS / f"app-denoise-remasked-canvas-{width}.png"))


def test_step_by_step_forks_a_run_and_runs_both_in_the_browser():
    """The shipped default model, Step by step: three steps, a click on a masked cell shows its candidates, the
    second one forks the run, and both branches run to the end, each with its text and its likelihood."""
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app() as url:
        for width in (1400, 800):
            with browser_page(width, 1000) as page:
                page.goto(url)
                open_tab(page, "Step by step")
                page.get_by_role("button", name="Start", exact=True).click()
                page.get_by_text("Paused after step 1 ").wait_for(timeout=120_000)
                for step in (2, 3):
                    page.get_by_role("button", name="Next step").click()
                    page.get_by_text(f"Paused after step {step} ").wait_for(timeout=120_000)
                # a real click on a masked cell of the current block (its onclick fills the hidden position box)
                cell = page.locator(".lp-canvas .lp-tok.lp-mask[onclick]").first
                position = int(cell.get_attribute("data-pos"))
                cell.click()
                page.get_by_text(f"Candidates at position {position}").wait_for(timeout=60_000)
                choices = page.get_by_role("radio").filter(visible=True)
                choices.nth(1).wait_for(timeout=30_000)
                assert choices.count() >= 2
                second = choices.nth(1).evaluate("e => e.closest('label').innerText").strip()
                choices.nth(1).check()
                page.get_by_role("button", name="Fork with this candidate").click()
                page.get_by_text(f"committed at position {position}.").wait_for(timeout=60_000)
                page.get_by_role("button", name="Run both to the end").click()
                page.get_by_text("Fork: log p(text | prompt) >= ").wait_for(timeout=120_000)
                page.get_by_text("Main branch: log p(text | prompt) >= ").wait_for(timeout=60_000)
                main_status = page.get_by_text("Main branch: log p(text | prompt) >= ").inner_text()
                fork_status = page.get_by_text("Fork: log p(text | prompt) >= ").inner_text()
                assert main_status.startswith("Finished after 64 steps") and " nats (" in main_status
                # the hand-made commit fills one of the block's cells: its mask may leave a step early
                assert fork_status.startswith(("Finished after 64 steps", "Finished after 63 steps")), fork_status
                assert " nats (" in fork_status and fork_status != main_status
                main_text = page.get_by_role("textbox", name="Text", exact=True).filter(visible=True).input_value()
                fork_text = page.get_by_role("textbox", name="The fork's text").input_value()
                assert main_text and fork_text and main_text != fork_text, (main_text, fork_text)
                canvases = page.locator(".lp-canvas").filter(visible=True)
                assert canvases.count() == 2
                forked = canvases.nth(1).locator(f'[data-pos="{position}"]')
                assert "lp-forced" in forked.get_attribute("class")  # the fork's hand-made commit, underlined
                assert "lp-forced" not in canvases.nth(0).locator(f'[data-pos="{position}"]').get_attribute("class")
                label = second.rsplit(" (", 1)[0].strip()  # "O  (0.03)": the page collapses the spaces
                assert label in forked.get_attribute("title"), (label, forked.get_attribute("title"))
                page.screenshot(path=str(ARTIFACTS / f"app-step-fork-{width}.png"), full_page=True)


def test_icl_tab_shows_the_slot_filling_live_and_both_answers_in_the_browser(tmp_path):
    """The few-shot pair at 1400 and 800 px: a fresh mapping drawn, the diffusion model's slot seen open (a mask
    with its guess) and then filled, the twin's answer and the label bars; the examples moved after the question;
    a line that is not an example gets its message."""
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app("--models-dir", str(tmp_path)) as url:
        for width in (1400, 800):
            with browser_page(width, 1100) as page:
                page.goto(url)
                open_tab(page, "In-context learning")
                examples = page.get_by_label("Examples, one a line")
                first = examples.input_value()
                page.get_by_role("button", name="Draw a fresh mapping").click()
                page.wait_for_function("([el, before]) => el.value != before",
                                       arg=[examples.element_handle(), first], timeout=30_000)
                page.get_by_role("button", name="Ask both models").click()
                page.wait_for_function("document.querySelectorAll('.lp-canvas .lp-tok.lp-mask').length == 1",
                                       timeout=60_000)  # the first of two steps drawn: one mask still open
                page.get_by_text("Twin:").first.wait_for(timeout=60_000)
                assert page.locator(".lp-canvas .lp-tok.lp-mask").count() == 0
                assert page.locator("table.lp-bars tr").count() >= 3
                page.screenshot(path=str(ARTIFACTS / f"app-icl-{width}.png"), full_page=True)
                if width == 1400:
                    page.get_by_text("the question, then the examples").click()
                    page.get_by_role("button", name="Ask both models").click()
                    page.get_by_text("never the examples after it").first.wait_for(timeout=60_000)
                    page.screenshot(path=str(ARTIFACTS / "app-icl-after.png"), full_page=True)
                    examples.fill("dakul -> red\nmipo red")
                    page.get_by_role("button", name="Ask both models").click()
                    page.get_by_text("line 2 ('mipo red') is not an example").first.wait_for(timeout=30_000)
