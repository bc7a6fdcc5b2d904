from pathlib import Path

import pytest

from llada_play.checkpoint import save_model
from tests.browser import browser_page, require_chromium, running_app

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
        assert len(frames) >= 2, "intermediate steps should be streamed to the page"
        assert page.locator(".lp-tok").count() >= 64
        assert page.locator(".lp-mask").count() == 0  # everything committed
        page.screenshot(path=str(ARTIFACTS / "app-denoise.png"), full_page=True)
        assert external == [], f"the page fetched from outside: {external[:3]}"
