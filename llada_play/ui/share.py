"""A run as a link: the model, prompt and every setting of the Denoise tab in a URL query, and that query read
back into the controls' values, checked against what each control accepts (a link is typed by anyone)."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

MAX_TEXT = 4000  # characters of one text field a link may carry (a prompt longer than this is refused)
MODEL = "model"  # the query key of the model


@dataclass(frozen=True)
class Field:
    """What one control accepts: its kind ("text", "bool", "number", "choice"), range or choices, default."""

    kind: str
    default: object
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    whole: bool = False


def field_of(component) -> Field:
    """The :class:`Field` of a gradio input component."""
    import gradio as gr

    if isinstance(component, gr.Checkbox):
        return Field("bool", bool(component.value))
    if isinstance(component, gr.Dropdown):
        choices = tuple(c[1] if isinstance(c, (tuple, list)) else c for c in component.choices)
        return Field("choice", component.value, choices=choices)
    if isinstance(component, gr.Slider):
        return Field("number", component.value, component.minimum, component.maximum,
                     whole=float(component.step).is_integer() and float(component.minimum).is_integer())
    if isinstance(component, gr.Number):
        return Field("number", component.value, component.minimum, component.maximum, whole=component.precision == 0)
    return Field("text", component.value or "")


def link_query(model: str, values: Mapping[str, object], fields: Mapping[str, Field]) -> str:
    """The URL query of a run: the model and every control's value (booleans as 1/0, whole numbers without a
    decimal point)."""
    query = {MODEL: model}
    for name, field in fields.items():
        value = values.get(name, field.default)
        if field.kind == "bool":
            value = int(bool(value))
        elif field.kind == "number" and value is not None and float(value).is_integer():
            value = int(float(value))
        query[name] = "" if value is None else str(value)
    return urlencode(query)


def parse_value(name: str, text: str, field: Field) -> object:
    """One query value as its control's value; ValueError in words a visitor can act on."""
    if field.kind == "text":
        if len(text) > MAX_TEXT:
            raise ValueError(f"{name} in the link is {len(text)} characters long; a link carries at most {MAX_TEXT}")
        return text
    if field.kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("1", "0", "true", "false", ""):
            raise ValueError(f"{name} in the link must be 1 or 0, not {text[:40]!r}")
        return lowered in ("1", "true")
    if field.kind == "choice":
        if text not in field.choices:
            raise ValueError(f"{name} in the link must be one of {', '.join(map(str, field.choices))}, "
                             f"not {text[:40]!r}")
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} in the link must be a number, not {text[:40]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} in the link must be a finite number")
    if (field.minimum is not None and value < field.minimum) or (field.maximum is not None and value > field.maximum):
        raise ValueError(f"{name} in the link is {value:g}, outside {field.minimum:g} to {field.maximum:g}")
    if field.whole:
        if not value.is_integer():
            raise ValueError(f"{name} in the link must be a whole number, not {text[:40]!r}")
        return int(value)
    return value


def values_from_query(params: Mapping[str, str], fields: Mapping[str, Field]) -> tuple[str | None, dict, list[str]]:
    """(model or None, values by name, problems) of a link's query: each value that its control accepts is
    taken, every other one keeps the control's default and is named in ``problems``; unknown keys too."""
    values, problems = {}, []
    for name, text in params.items():
        if name == MODEL:
            continue
        if name not in fields:
            problems.append(f"the link's {name[:40]!r} is not a setting of this page (ignored)")
            continue
        try:
            values[name] = parse_value(name, text, fields[name])
        except ValueError as err:
            problems.append(str(err))
    model = params.get(MODEL)
    if model is not None and len(model) > MAX_TEXT:
        problems.append("the link's model name is too long (ignored)")
        model = None
    return model, values, problems
