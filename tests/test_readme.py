"""The README's library example runs as written."""
import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_library_example_runs():
    code = re.search(r"## The library in ten lines\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), namespace)
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("0 ") and any('"prompt_length"' in line for line in printed)
    # the iterator example goes on from the first one's model and prompt
    steering = re.search(r"can pause between steps.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(steering, "README.md", "exec"), namespace)
    run, prompt = namespace["run"], namespace["prompt"]
    assert int(run.output[0, prompt.shape[1] + 40]) == namespace["love"]
    assert int((run.output == namespace["model"].config.mask_token_id).sum()) == 0
