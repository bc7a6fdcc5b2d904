"""The app as a teaching instrument, in Chromium at 1400 and 800 px: a canvas that explains itself, a pace a
person can follow, playback, a run kept (trace, standalone replay, PNG) and shared (a link), defaults that fit
the loaded model, the Step tab's picked cell and typed words, one log line per refused input."""
import json
import struct
from pathlib import Path

import pytest

from llada_play.diffusion.trace import Trace
from llada_play.ui.viz import MASK_GLYPH
from tests.browser import browser_page, open_tab, require_chromium, running_app

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on the shipped default model, its log kept."""
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    log = tmp_path_factory.mktemp("log") / "app.log"
    with running_app("--models-dir", str(tmp_path_factory.mktemp("models")), log_path=log) as url:
        yield url, log


def slider_value(page, label: str) -> int:
    return int(float(page.get_by_label(f"number input for {label}").input_value()))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def denoise_and_wait(page, timeout: int = 90_000) -> list[str]:
    """Click Denoise; the live status lines seen on the way."""
    page.get_by_role("button", name="Denoise", exact=True).click()
    seen = set()
    for _ in range(1200):
        text = page.locator("body").inner_text()
        if "Done:" in text:
            break
        seen |= {line for line in text.splitlines() if line.startswith("Step ") and " of 64, block " in line}
        page.wait_for_timeout(20)
    page.get_by_text("Done:").first.wait_for(timeout=timeout)
    page.locator("#lp-trace-file a").first.wait_for(timeout=30_000)  # the files come with the second update
    return sorted(seen)


@pytest.mark.parametrize("width", [1400, 800])
def test_denoise_explains_itself_plays_back_and_keeps_the_run(app, width, tmp_path):
    url, _ = app
    with browser_page(width, 1000) as page:
        page.goto(url)
        body = page.locator("body")
        page.get_by_text("One step:").first.wait_for(timeout=60_000)
        for words in ("grey italic is the model's current guess", "committed at this step", "pinned by you",
                      "end-of-text", "filled before the next starts", "confidence 0 → 1"):
            assert page.get_by_text(words).first.is_visible(), words
        assert page.get_by_text("Steps in all; each commits about length ÷ steps tokens.").first.is_visible()
        statuses = denoise_and_wait(page)
        # at the default pace (0.1 s a step) every step is drawn: a person can follow the run
        assert len(statuses) >= 32, statuses[:5]
        page.locator(".js-plotly-plot").nth(1).wait_for(timeout=30_000)  # both charts drawn
        page.screenshot(path=str(ARTIFACTS / f"app-denoise-teaching-{width}.png"), full_page=True)
        legend_font = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#lp-denoise-canvas "
                                    ".lp-tok')).fontSize)")
        assert legend_font >= 14  # read from the back of a room
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        # scrubbing back: the canvas, the text (one glyph per mask) and the status follow the step
        box = page.get_by_label("number input for Step (scrub the recorded run)")
        box.fill("10")
        box.press("Enter")
        page.wait_for_function("document.body.innerText.includes('Step 10 of 64, block 1 of 2.')", timeout=30_000)
        text = page.get_by_label("Text (▒ = a masked position)").input_value()
        assert text.count(MASK_GLYPH) >= 64 - 10 * 1 - 1 and "_" not in text
        assert page.locator("#lp-denoise-canvas .lp-tok.lp-mask").count() >= 50

        # playback from step 10: the slider moves on by itself, and stops at Pause
        page.get_by_role("button", name="▶ Play").click()
        page.wait_for_function("document.body.innerText.match(/Step (1[3-9]|[2-6]\\d) of 64/)", timeout=30_000)
        page.get_by_role("button", name="❚❚ Pause").click()
        page.wait_for_timeout(600)
        paused = slider_value(page, "Step (scrub the recorded run)")
        page.wait_for_timeout(1200)
        assert 12 <= slider_value(page, "Step (scrub the recorded run)") == paused < 64

        # the trace: downloaded, read by the library, opened back in the page
        with page.expect_download(timeout=30_000) as download:
            page.locator("#lp-trace-file a").first.click()
        trace_path = tmp_path / "trace.json"
        download.value.save_as(trace_path)
        trace = Trace.from_json(trace_path)
        assert len(trace.steps) == 64 and trace.sampler_config().steps == 64

        # the PNG of the canvas, made in the browser
        with page.expect_download(timeout=30_000) as download:
            page.get_by_role("button", name="Save the canvas as PNG").click()
        png = tmp_path / "canvas.png"
        download.value.save_as(png)
        w, h = png_size(png)
        assert w >= 400 and h >= 100

        # the standalone replay
        with page.expect_download(timeout=30_000) as download:
            page.locator("#lp-replay-file a").first.click()
        replay = tmp_path / "replay.html"
        download.value.save_as(replay)

        with page.expect_file_chooser(timeout=30_000) as chooser:
            page.get_by_role("button", name="Open a trace (.json)").click()
        chooser.value.set_files(str(trace_path))
        page.get_by_text("Opened trace.json: 64 steps").first.wait_for(timeout=30_000)
        assert slider_value(page, "Step (scrub the recorded run)") == 64

    # the replay opened offline: no server, every request refused but the file itself
    with browser_page(width, 900) as page:
        requests = []
        page.route("**/*", lambda route: (requests.append(route.request.url), route.abort()
                                          if not route.request.url.startswith("file:") else route.continue_()))
        page.goto(replay.as_uri())
        assert page.locator("#lp-status").inner_text() == "Step 64 of 64, block 2 of 2."
        page.locator("#lp-step").fill("5")
        page.locator("#lp-step").dispatch_event("input")
        assert page.locator("#lp-status").inner_text() == "Step 5 of 64, block 1 of 2."
        assert page.locator("#lp-canvas .lp-tok.lp-mask").count() >= 50
        page.locator("#lp-pace").select_option("0.05")
        page.locator("#lp-play").click()
        page.wait_for_function("document.getElementById('lp-status').innerText.startsWith('Step 2')", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / f"app-replay-offline-{width}.png"), full_page=True)
        assert [r for r in requests if not r.startswith("file:")] == []


def test_a_link_restores_the_run_for_whoever_opens_it(app):
    url, _ = app
    with browser_page(1400, 1000) as page:
        page.goto(url)
        page.get_by_label("Prompt").fill("JULIET.\n")
        page.get_by_label("number input for Seed").fill("7") if page.get_by_label(
            "number input for Seed").count() else page.get_by_label("Seed").fill("7")
        page.get_by_label("number input for Pace (seconds a step)").fill("0")
        page.get_by_label("number input for Pace (seconds a step)").press("Enter")
        denoise_and_wait(page)
        first = page.get_by_label("Text (▒ = a masked position)").input_value()
        page.get_by_role("button", name="Copy a link to this run").click()
        page.wait_for_function("document.querySelector('#lp-link textarea, #lp-link input')?.value.startsWith('http')",
                               timeout=30_000)
        link = page.locator("#lp-link textarea, #lp-link input").first.input_value()
    assert "seed=7" in link and "prompt=JULIET." in link
    with browser_page(800, 1000) as page:  # another visitor, another width: the same run, started by the link
        page.goto(link)
        page.get_by_text("Done:").first.wait_for(timeout=90_000)
        assert page.get_by_label("Prompt").input_value() == "JULIET.\n"
        assert page.get_by_label("Text (▒ = a masked position)").input_value() == first
        page.screenshot(path=str(ARTIFACTS / "app-link-restored-800.png"), full_page=True)
    with browser_page(1400, 1000) as page:  # a link with a bad value: named, the rest restored, nothing run
        page.goto(link.replace("seed=7", "seed=x").replace("steps=64", "steps=999"))
        page.get_by_text("The link was restored in part").first.wait_for(timeout=60_000)
        body = page.locator("body").inner_text()
        assert "seed in the link must be a number" in body and "steps in the link is 999" in body
        assert page.get_by_label("Prompt").input_value() == "JULIET.\n"
        assert "Done:" not in body


def test_chat_warns_on_a_text_model_and_switches_to_the_instruct_model(app):
    url, _ = app
    with browser_page(1400, 1000) as page:
        page.goto(url)
        open_tab(page, "Chat")
        page.get_by_text("The loaded model is not a chat model").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Use Arithmetic (SFT of the default)").click()
        page.get_by_text("an instruct model for sums").first.wait_for(timeout=60_000)
        assert "Arithmetic (SFT of the default)" in page.locator("body").inner_text().split("Denoise")[0]
        page.get_by_label("Your message").fill("What is 12 + 7?")
        page.get_by_role("button", name="Send").click()
        page.locator(".lp-canvas .lp-tok").first.wait_for(timeout=60_000)  # the reply's canvas, as Denoise's
        page.wait_for_function("document.querySelectorAll('[data-testid=\"bot\"]').length >= 1", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "app-chat-instruct-1400.png"), full_page=True)


def test_loading_a_model_sets_the_denoise_defaults_that_fit_it(app):
    url, _ = app
    with browser_page(1400, 1000) as page:
        page.goto(url)
        open_tab(page, "Model")
        page.get_by_label("Model", exact=True).click()
        page.get_by_role("option", name="Arithmetic (SFT of the default)", exact=True).click()
        page.get_by_role("button", name="Load", exact=True).click()
        page.get_by_text("Loaded Arithmetic (SFT of the default)").first.wait_for(timeout=60_000)
        open_tab(page, "Denoise")
        page.wait_for_function("document.querySelector('textarea').value === 'What is 12 + 7?'", timeout=30_000)
        assert page.get_by_label("Chat template (instruct models)").is_checked()


def test_step_by_step_frames_the_picked_cell_and_commits_every_token_of_a_typed_word(app):
    url, _ = app
    with browser_page(1400, 1000) as page:
        page.goto(url)
        open_tab(page, "Step by step")
        page.get_by_role("button", name="Start").click()
        page.get_by_text("Paused after step 1 of 64, block 1 of 2.").first.wait_for(timeout=60_000)
        cell = page.locator(".lp-canvas .lp-tok.lp-mask[onclick]").nth(3)
        position = int(cell.get_attribute("data-pos"))
        cell.click()
        page.locator(f".lp-canvas .lp-picked[data-pos='{position}']").wait_for(timeout=30_000)
        page.get_by_text(f"Candidates at position {position}").first.wait_for(timeout=30_000)
        page.get_by_label("...or any text").fill(" dragonfly")
        page.get_by_role("button", name="Commit by hand").click()
        page.get_by_text("Committed ' dragonfly'").first.wait_for(timeout=30_000)
        status = page.locator("body").inner_text()
        assert "' dragonfly'" in status and " tokens)" in status  # every token, not only the first
        assert page.locator(".lp-canvas .lp-forced").count() >= 2
        page.get_by_role("button", name="Next step").click()
        page.get_by_text("Paused after step 2 of 64").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Run to the end").click()
        page.get_by_text("Finished after").first.wait_for(timeout=60_000)
        page.wait_for_timeout(800)
        assert page.get_by_text("Candidates at position").count() == 0  # no stale candidates
        assert page.locator("input[type=radio]").count() == 0
        page.screenshot(path=str(ARTIFACTS / "app-step-typed-word-1400.png"), full_page=True)


def test_refused_input_is_one_log_line_and_a_fault_keeps_its_traceback(app):
    url, log = app
    from gradio_client import Client

    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="the prompt is empty"):
        client.predict("   ", api_name="/denoise")
    with pytest.raises(Exception, match="must be divisible by block_length"):
        client.predict("Romeo.\n", False, "", 64, 64, 24, api_name="/denoise")
    text = log.read_text()
    assert "llada-play: refused: the prompt is empty" in text
    assert "llada-play: refused: gen_length (64) must be divisible by block_length (24)" in text
    assert "Traceback" not in text


SLIDER_MAXIMA_CUT = """() => [...document.querySelectorAll('.slider_input_container')].filter(c => c.offsetParent)
    .filter(c => { const m = c.querySelector('.max_value'); const block = c.closest('.block');
                   return m && block && m.getBoundingClientRect().right > block.getBoundingClientRect().right + 1; })
    .map(c => c.querySelector('.max_value').textContent)"""


def overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


@pytest.mark.parametrize("width", [1400, 800])
def test_the_other_tabs_hold_their_layout_and_explain_themselves(app, width):
    """The breakages a first-time user met: slider maxima cut ("25" for 256, "200" for 2000), Compare's "Sett 1"
    and unnamed axes, the Puzzle's grids over each other and 7 px commit numbers and a blank page before Solve,
    the LoRA label on four lines, the Reversal chart's legend over the bars and names never explained."""
    url, _ = app
    with browser_page(width, 1000) as page:
        page.goto(url)
        page.get_by_text("One step:").first.wait_for(timeout=60_000)

        open_tab(page, "Compare")
        page.get_by_text("Setting 4 runs half the steps").first.wait_for(timeout=30_000)
        assert page.evaluate(SLIDER_MAXIMA_CUT) == []
        label = page.get_by_text("Setting 1", exact=True).first
        assert label.evaluate("e => e.scrollWidth <= e.clientWidth")  # "Setting 1", not "Sett 1"
        page.get_by_role("button", name="Compare on the prompt").click()
        panels = page.get_by_role("tabpanel").locator(".js-plotly-plot")
        panels.locator(".xtitle").first.wait_for(timeout=60_000)
        axis_titles = panels.locator("text[class^='x'][class$='title']")
        assert axis_titles.count() == 4 and {t.text_content() for t in axis_titles.all()} == {"position"}  # every axis named
        titles = [t.bounding_box() for t in panels.locator(".annotation").all()][:4]
        assert not any(overlap(a, b) for i, a in enumerate(titles) for b in titles[i + 1:])
        assert "up to 32 steps" in page.locator(".lp-compare-table").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"app-compare-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        open_tab(page, "Puzzle")
        page.get_by_text("Before Solve.").first.wait_for(timeout=30_000)
        grids = page.locator(".lp-puzzle-grids table.lp-sudoku")
        assert grids.count() == 2 and all(g.locator("td").count() == 36 for g in grids.all())
        first, second = (g.bounding_box() for g in grids.all())
        assert not overlap(first, second) and max(first["x"] + first["width"], second["x"] + second["width"]) <= width
        assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('.lp-sudoku-legend .lp-k'))"
                             ".fontSize)") >= 12  # the commit numbers, read from the back of a room
        page.screenshot(path=str(ARTIFACTS / f"app-puzzle-before-solve-{width}.png"), full_page=True)

        open_tab(page, "Quick SFT")
        page.get_by_text("on an idle 2-core CPU").first.wait_for(timeout=30_000)
        assert page.evaluate(SLIDER_MAXIMA_CUT) == []
        assert page.get_by_text("2000", exact=True).first.is_visible()
        lora = page.get_by_text("LoRA rank", exact=True).first
        assert lora.bounding_box()["height"] < 30  # one line

        open_tab(page, "Reversal curse")
        page.get_by_role("button", name="Load", exact=True).click()
        page.get_by_text("How to read the names").first.wait_for(timeout=60_000)
        page.get_by_role("tabpanel").locator(".js-plotly-plot .legend").first.wait_for(timeout=60_000)
        chart = page.get_by_role("tabpanel").locator(".js-plotly-plot").first
        legend, area = chart.locator(".legend").bounding_box(), chart.locator(".barlayer").first.bounding_box()
        assert legend["y"] + legend["height"] <= area["y"] + 1  # above the bars, never over them
        assert "ranks the true answer of a reversed question" in page.locator("body").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"app-reversal-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
