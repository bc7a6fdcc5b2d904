"""Write a checkpoint directory whose model ships its own Python code, as hub repositories with remote code do.

The code files are imported once as a throw-away package to build and save the model, then the package is
forgotten, so loading the directory later goes through ``transformers``' remote-code path, as a user's would.
"""
import importlib
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import torch


def write_remote_code_model(directory: Path, code: dict[str, str], config_class: str, model_class: str,
                            **config_kwargs) -> Path:
    """``code`` maps module names (``configuration_x``) to their source; ``config_class`` and ``model_class``
    are ``module.Class``. The model is built from ``config_class(**config_kwargs)`` with seed 0 and saved with
    an ``auto_map`` pointing at the code."""
    directory.mkdir(parents=True)
    for module, source in code.items():
        (directory / f"{module}.py").write_text(textwrap.dedent(source))
    package = f"_remote_code_{directory.name.replace('-', '_')}"
    (directory / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location(package, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    sys.modules[package] = importlib.util.module_from_spec(spec)
    try:
        def load(qualified: str):
            module, name = qualified.rsplit(".", 1)
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        torch.manual_seed(0)
        load(model_class)(load(config_class)(**config_kwargs)).save_pretrained(directory)
    finally:
        for name in [n for n in sys.modules if n.startswith(package)]:
            del sys.modules[name]
        (directory / "__init__.py").unlink()
    config = json.loads((directory / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": config_class, "AutoModel": model_class}
    (directory / "config.json").write_text(json.dumps(config))
    return directory
