import pytest

from llada_play.checkpoint import save_model
from tests.browser import browser_page, require_chromium, running_app


@pytest.fixture
def model_dir(tiny_model, char_tokenizer, tmp_path):
    return str(save_model(tiny_model, char_tokenizer, tmp_path / "m"))


def test_app_denoises_in_the_browser_offline(model_dir, tmp_path):
    require_chromium()
    with running_app("--model", model_dir) as url, browser_page() as page:
        external = []
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
        page.goto(url)
        page.get_by_role("button", name="Denoise").click()
        page.get_by_text("Done:").wait_for(timeout=60_000)
        cells = page.locator(".lp-tok")
        assert cells.count() >= 64
        assert page.locator(".lp-mask").count() == 0  # everything committed
        assert page.locator(".lp-block").count() == 2  # 64 tokens in blocks of 32
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        assert external == [], f"the page fetched from outside: {external[:3]}"
