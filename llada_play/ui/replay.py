"""A run kept outside the app: a standalone HTML replay of its canvas (no server, no CDN: one file that opens
offline in any browser) and the script that saves a canvas as a PNG, both drawn by :mod:`.viz`'s renderer."""
from __future__ import annotations

import html
import json
import re

from ..diffusion.trace import Trace
from .viz import CANVAS_LEGEND, CELL_CSS, STEP_EXPLANATION, trace_status, trace_step_html, trace_text

# Saves the canvas element ``el`` as a PNG, in the browser: the element and the canvas's style sheet drawn
# into an SVG image (foreignObject), painted on a 2x <canvas>, downloaded. Nothing leaves the page.
PNG_JS = r"""
function lpSavePng(el, name) {
  if (!el) return;
  const w = Math.ceil(el.scrollWidth), h = Math.ceil(el.scrollHeight);
  const css = [...document.querySelectorAll('style')].map(s => s.textContent)
    .filter(t => t.includes('.lp-tok')).join('\n');
  const body = new XMLSerializer().serializeToString(el);
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="' + w + '" height="' + h + '">' +
    '<foreignObject width="100%" height="100%"><div xmlns="http://www.w3.org/1999/xhtml" ' +
    'style="background:#fff;width:' + w + 'px"><style>' + css + '</style>' + body + '</div></foreignObject></svg>';
  const img = new Image();
  img.onload = () => {
    const scale = 2, c = document.createElement('canvas');
    c.width = w * scale; c.height = h * scale;
    const g = c.getContext('2d');
    g.scale(scale, scale); g.fillStyle = '#fff'; g.fillRect(0, 0, w, h); g.drawImage(img, 0, 0);
    c.toBlob(blob => {
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob); a.download = name || 'canvas.png';
      document.body.appendChild(a); a.click(); a.remove();
    }, 'image/png');
  };
  img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
}
"""

PLAYER_JS = r"""
const slider = document.getElementById('lp-step'), play = document.getElementById('lp-play');
const pace = document.getElementById('lp-pace');
let timer = null;
function show(i) {
  slider.value = i;
  document.getElementById('lp-canvas').innerHTML = FRAMES[i];
  document.getElementById('lp-text').textContent = TEXTS[i];
  document.getElementById('lp-status').textContent = STATUS[i];
}
function stop() { clearInterval(timer); timer = null; play.textContent = '▶ Play'; }
function start() {
  if (+slider.value >= FRAMES.length - 1) show(0);
  play.textContent = '❚❚ Pause';
  timer = setInterval(() => {
    const i = +slider.value + 1;
    if (i >= FRAMES.length) { stop(); return; }
    show(i);
  }, 1000 * +pace.value);
}
play.onclick = () => timer ? stop() : start();
pace.onchange = () => { if (timer) { stop(); start(); } };
slider.oninput = () => { stop(); show(+slider.value); };
document.getElementById('lp-png').onclick = () =>
  lpSavePng(document.querySelector('#lp-canvas .lp-canvas'), 'llada-play-step-' + slider.value + '.png');
show(FRAMES.length - 1);
"""

PAGE_CSS = """
<style>
body {font-family: ui-sans-serif, system-ui, 'DejaVu Sans', sans-serif; max-width: 1100px; margin: 24px auto;
      padding: 0 16px; color: #1b1e24; font-size: 16px;}
.lp-controls {display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin: 14px 0;}
.lp-controls button {font-size: 16px; padding: 6px 14px; border-radius: 6px; border: 1px solid #adb5bd;
                     background: #fff; cursor: pointer;}
#lp-play {background: #e8590c; color: #fff; border-color: #e8590c; min-width: 110px;}
#lp-step {flex: 1; min-width: 200px;}
#lp-status {font-weight: 600; min-width: 230px;}
#lp-text {white-space: pre-wrap; background: #f8f9fa; border: 1px solid #dee2e6; border-radius: 6px;
          padding: 10px; font-size: 15px;}
.lp-settings {color: #495057;}
</style>
"""


def markdown_to_html(text: str) -> str:
    """The little Markdown the page's explanations use (**bold**, *italic*) as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)


def _script_json(value) -> str:
    """JSON that can sit inside a <script> element (no "</" to close it early)."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def settings_line(trace: Trace) -> str:
    """The run's sampler settings in one line, from the trace's config."""
    config = trace.config or {}
    keys = ("gen_length", "steps", "block_length", "temperature", "cfg_scale", "remasking", "threshold", "remask",
            "remask_eta", "edit_threshold", "seed")
    shown = [f"{k} {config[k]}" for k in keys if config.get(k) not in (None, False)]
    return ", ".join(shown) or "settings not recorded"


def replay_page(trace: Trace, eos_ids: set[int] = frozenset(), title: str = "A denoising run",
                row: int = 0) -> str:
    """One self-contained HTML file that plays ``trace`` back: every step's canvas (the app's renderer), its
    text and status, a slider, Play/Pause with a pace, and a PNG of the step shown."""
    n = len(trace.steps)
    frames = [trace_step_html(trace, i, row, eos_ids, css=False) for i in range(n + 1)]
    texts = [trace_text(trace, i, row, eos_ids) for i in range(n + 1)]
    status = [trace_status(trace, i) for i in range(n + 1)]
    prompt = "".join(trace.tokens.get(str(t), "?") for t in trace.initial[row][:trace.prompt_length])
    paces = "".join(f'<option value="{s}"{" selected" if s == 0.25 else ""}>{s} s a step</option>'
                    for s in (0.05, 0.1, 0.25, 0.5, 1.0, 2.0))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>{PAGE_CSS}{CELL_CSS}</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="lp-settings">Prompt: <code>{html.escape(prompt)}</code><br>Settings: {html.escape(settings_line(trace))}.
Made with llada-play; this file needs no server and no network.</p>
<p>{markdown_to_html(STEP_EXPLANATION)}</p>
{CANVAS_LEGEND.replace(CELL_CSS, "")}
<div class="lp-controls">
  <button id="lp-play" type="button">▶ Play</button>
  <input id="lp-step" type="range" min="0" max="{n}" value="{n}" step="1" aria-label="step">
  <span id="lp-status"></span>
  <label>Pace <select id="lp-pace">{paces}</select></label>
  <button id="lp-png" type="button">Save PNG</button>
</div>
<div id="lp-canvas"></div>
<h3>Text</h3>
<div id="lp-text"></div>
<script>
const FRAMES = {_script_json(frames)};
const TEXTS = {_script_json(texts)};
const STATUS = {_script_json(status)};
{PNG_JS}
{PLAYER_JS}
</script>
</body></html>
"""
