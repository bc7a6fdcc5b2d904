"""One rule from a settings dataclass to command-line flags: a field's name is its flag.

``add_config_arguments(parser, Config)`` gives every field of ``Config`` a flag ``--field-name`` whose type
comes from the annotation (int, float, str; bool as ``--x/--no-x``; ``X | None``, where ``none`` sets None;
tuples and lists as several values, or one value with commas; ``dict[str, str]`` as a repeatable
``KEY=VALUE``; ``Literal[...]`` as choices), whose help is the field's ``metadata["help"]`` or, failing that,
the comment at the end of its line, and whose default is the dataclass's (or that of a ``defaults`` instance).
``config_from_args(Config, args)`` builds the instance back from the parsed flags: the flags given, over the
defaults, through the dataclass's own validation.

A flag that is not given is left out of the parsed namespace (its default is recorded once per class), so
``config_from_args`` can tell "not given" from "given the default value" and start from another base
(``llada-play reversal --quick``). Old spellings stay usable as aliases that ``--help`` names as such
(``aliases={"--steps": "max_steps"}``, or ``{"--autoregressive": ("objective", "autoregressive")}`` for a flag
that sets one value).

The bottom of the package: it imports nothing from it, so that every layer (``diffusion.sampler_config`` too)
may use it.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

DEFAULTS_KEY = "_config_defaults"  # parsed namespace attribute: class -> the instance its flags default to
Alias = str | tuple[str, Any]  # a field's name (same value), or (field name, the value the flag sets)


def flag_of(name: str) -> str:
    """``max_steps`` -> ``--max-steps``."""
    return "--" + name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class FieldType:
    """How one field's value is read from the command line."""

    element: type  # int, float, str or bool (of one value)
    optional: bool = False  # X | None
    sequence: type | None = None  # tuple or list
    mapping: bool = False  # dict[str, str]
    choices: tuple | None = None  # Literal[...]


def _strip_optional(annotation) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and len(members) < len(typing.get_args(annotation)):
            return members[0], True
    return annotation, False


def field_type(annotation) -> FieldType:
    """The :class:`FieldType` of an annotation; TypeError for one the command line cannot express."""
    inner, optional = _strip_optional(annotation)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        if len(kinds) != 1:
            raise TypeError(f"Literal choices of one type only, got {annotation}")
        return FieldType(kinds.pop(), optional, choices=tuple(args))
    if origin in (tuple, list):
        element = args[0] if args else str
        inner_type = field_type(element)
        if inner_type.sequence or inner_type.mapping or inner_type.optional:
            raise TypeError(f"sequences of plain values only, got {annotation}")
        return FieldType(inner_type.element, optional, sequence=origin, choices=inner_type.choices)
    if origin is dict:
        if args and args != (str, str):
            raise TypeError(f"only dict[str, str] becomes KEY=VALUE flags, got {annotation}")
        return FieldType(str, optional, mapping=True)
    if inner in (int, float, str, bool):
        return FieldType(inner, optional)
    raise TypeError(f"no command-line form for the annotation {annotation}")


@lru_cache(maxsize=None)
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment at the end of its line in the class body (empty where the source is missing)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's comment wins
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        by_line = {tok.start[0]: tok.string.lstrip("#").strip()
                   for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
        body = ast.parse(source).body[0]
        for node in getattr(body, "body", []):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                text = by_line.get(node.end_lineno) or by_line.get(node.lineno)
                if text:
                    comments[node.target.id] = text
    return comments


def field_help(cls: type, f: dataclasses.Field) -> str:
    return f.metadata.get("help") or field_comments(cls).get(f.name, "")


def _default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _reader(kind: FieldType, name: str):
    """str -> one element's value, with argparse's error for a bad one."""
    def read(text: str):
        if kind.optional and not kind.sequence and kind.choices is None and text.lower() == "none":
            return None
        if kind.element is bool:
            lowered = text.lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise argparse.ArgumentTypeError(f"{flag_of(name)} takes true or false, got {text!r}")
            return lowered in {"true", "1", "yes"}
        try:
            return kind.element(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag_of(name)} takes {kind.element.__name__} values, "
                                             f"got {text!r}") from None
    read.__name__ = kind.element.__name__  # argparse names the type in its own messages
    return read


def _sequence_reader(kind: FieldType, name: str):
    """One token of a sequence flag: one value, or several separated by commas."""
    one = _reader(dataclasses.replace(kind, optional=False), name)
    noun = {int: "integers", float: "numbers"}.get(kind.element, "values")

    def read(text: str) -> list:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{flag_of(name)} takes comma-separated {noun}, got {text!r}")
        try:
            values = [one(p) for p in parts]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{flag_of(name)} takes comma-separated {noun} (or several values), "
                                             f"got {text!r}") from None
        wrong = [v for v in values if kind.choices is not None and v not in kind.choices]
        if wrong:
            raise argparse.ArgumentTypeError(f"{flag_of(name)}: invalid choice {wrong[0]!r} "
                                             f"(choose from {', '.join(map(str, kind.choices))})")
        return values
    return read


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE, got {text!r}")
    return key.strip(), value


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def _argument_options(cls: type, f: dataclasses.Field, kind: FieldType, default, extra: dict) -> dict:
    """add_argument's keywords for one field (``extra``: the caller's own, e.g. choices or metavar)."""
    extra = dict(extra)
    repeat = extra.pop("repeat", False)
    help_text = extra.pop("help", None) or field_help(cls, f)
    nothing = default is None or default is False or default in ((), [], {})
    if default is not dataclasses.MISSING and not nothing:
        help_text = f"{help_text} (default {'on' if default is True else _shown(default)})".strip()
    options: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text.replace("%", "%%")}
    if kind.element is bool and not kind.sequence:
        options["action"] = argparse.BooleanOptionalAction
    elif kind.mapping:
        options.update(action="append", type=_pair, metavar="KEY=VALUE")
    elif kind.sequence:
        if repeat:
            options.update(action="append", type=_reader(dataclasses.replace(kind, optional=False), f.name))
        else:
            options.update(action="extend", nargs="+", type=_sequence_reader(kind, f.name))
        if kind.element in (int, float) and kind.choices is None:
            options["metavar"] = {int: "N", float: "X"}[kind.element]
    else:
        options["type"] = _reader(kind, f.name)
    choices = extra.pop("choices", None) or f.metadata.get("choices") or kind.choices
    if choices is not None and not kind.sequence:
        options["choices"] = list(choices)
    elif kind.element in (int, float) and "action" not in options:
        options["metavar"] = {int: "N", float: "X"}[kind.element]
    elif choices is not None:  # a sequence of choices: checked when the values are read
        options["metavar"] = "{" + ",".join(map(str, choices)) + "}"
    if "metavar" in f.metadata:
        options["metavar"] = f.metadata["metavar"]
    options.update(extra)
    return options


def add_config_arguments(parser, cls: type, defaults=None, *, aliases: Mapping[str, Alias] | None = None,
                         overrides: Mapping[str, Mapping[str, Any]] | None = None, exclude: Iterable[str] = (),
                         required: Iterable[str] = ()) -> None:
    """One flag per field of the dataclass ``cls`` (see the module's docstring), defaults from ``defaults`` (an
    instance; else the class's own). ``aliases``: old spellings (flag -> field, or flag -> (field, value));
    ``overrides``: field -> add_argument keywords (``choices``, ``metavar``, ``help``; ``repeat=True`` makes a
    list a repeatable flag of one value each); ``exclude``: fields without a flag; ``required``: fields that must
    be given (as must every field without a default). A field whose flag the parser already has (another
    class's field of the same name) shares that flag."""
    overrides, exclude, required = dict(overrides or {}), set(exclude), set(required)
    by_field: dict[str, list[tuple[str, Any]]] = {}
    for flag, target in (aliases or {}).items():
        name, value = (target, dataclasses.MISSING) if isinstance(target, str) else target
        by_field.setdefault(name, []).append((flag, value))
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = (set(by_field) | set(overrides) | exclude | required) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    known = getattr(parser, "_option_string_actions", {})
    recorded = dict(parser.get_default(DEFAULTS_KEY) or {})
    recorded[cls] = defaults
    parser.set_defaults(**{DEFAULTS_KEY: recorded})
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init or flag_of(f.name) in known:
            continue
        kind = field_type(hints[f.name])
        default = getattr(defaults, f.name) if defaults is not None else _default_of(f)
        must = f.name in required or default is dataclasses.MISSING
        shown = dataclasses.MISSING if must else default  # a flag that must be given has no default to show
        options = _argument_options(cls, f, kind, shown, overrides.get(f.name, {}))
        spellings = by_field.get(f.name, [])
        if not spellings:
            parser.add_argument(flag_of(f.name), required=must, **options)
            continue
        group = parser.add_mutually_exclusive_group(required=must)  # one spelling at a time
        group.add_argument(flag_of(f.name), **options)
        for flag, value in spellings:
            if value is dataclasses.MISSING:
                same = {k: v for k, v in options.items() if k != "help"}
                group.add_argument(flag, **same, help=f"alias of {flag_of(f.name)}")
            else:
                if isinstance(value, bool):
                    said = flag_of(f.name) if value else "--no-" + flag_of(f.name)[2:]
                else:
                    said = f"{flag_of(f.name)} {_shown(value)}"
                group.add_argument(flag, dest=f.name, action="store_const", const=value, default=argparse.SUPPRESS,
                                   help=f"alias of {said}")


def given_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given, with their values in the field's type."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not hasattr(args, f.name):
            continue
        value, kind = getattr(args, f.name), field_type(hints[f.name])
        if kind.mapping and isinstance(value, list):
            value = dict(value)
        elif kind.sequence and isinstance(value, list):  # each token gave a list (commas) or a value
            value = kind.sequence(x for item in value for x in (item if isinstance(item, list) else [item]))
        values[f.name] = value
    return values


def config_from_args(cls: type, args: argparse.Namespace, base=None, **fixed):
    """The ``cls`` instance that parsed flags describe: the flags given (and ``fixed``) over ``base``, else over
    the defaults that :func:`add_config_arguments` recorded, else the class's own. Validation is the class's
    own (``__post_init__``); a field left without a value is named in a ValueError."""
    if base is None:
        base = (getattr(args, DEFAULTS_KEY, None) or {}).get(cls)
    values = {**given_values(cls, args), **fixed}
    if base is not None:
        return dataclasses.replace(base, **values)
    missing = [flag_of(f.name) for f in dataclasses.fields(cls)
               if f.init and f.name not in values and _default_of(f) is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{', '.join(missing)} must be given")
    return cls(**values)


def config_to_argv(config, base=None, always: Iterable[str] = (),
                   spelling: Mapping[str, str] | None = None) -> list[str]:
    """The flags that give ``config`` from ``base`` (default: the class's defaults): one per field that differs
    (or has no default), in field order, and the fields in ``always``; ``spelling``: field -> the flag to write
    instead of its name's (an alias). Parsed back by :func:`config_from_args` over ``base``, they give ``config``."""
    cls, always, spelling = type(config), set(always), dict(spelling or {})
    hints = typing.get_type_hints(cls)
    argv: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value = getattr(config, f.name)
        start = getattr(base, f.name) if base is not None else _default_of(f)
        if f.name not in always and start is not dataclasses.MISSING and value == start:
            continue
        flag, kind = spelling.get(f.name, flag_of(f.name)), field_type(hints[f.name])
        if kind.element is bool and not kind.sequence:
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is None:
            argv += [flag, "none"]
        elif kind.mapping:
            for key, item in value.items():
                argv += [flag, f"{key}={item}"]
        elif kind.sequence:  # the flag once per value: both a repeatable flag and a several-value one take it
            if not value:
                raise ValueError(f"{flag} cannot be given an empty list on the command line")
            argv += [x for item in value for x in (flag, str(item))]
        else:
            argv += [flag, str(value)]
    return argv


def parse_config(cls: type, argv: list[str] | None = None, defaults=None, description: str | None = None, **kw):
    """A parser of ``cls``'s flags alone, applied to ``argv``: for a module's own ``python -m`` entry."""
    parser = argparse.ArgumentParser(description=description)
    add_config_arguments(parser, cls, defaults, **kw)
    args = parser.parse_args(argv)
    try:
        return config_from_args(cls, args)
    except ValueError as err:
        parser.error(str(err))
