"""Typed job configs: a YAML file plus ``key=value`` overrides, checked before any work starts.

Each job has one pydantic schema derived from :class:`JobConfig`. :func:`load_config` reads the
YAML, applies dotted overrides (``train.lr=2e-4``), validates, runs the schema's cross-field
checks, and raises one :class:`ConfigError` that lists *every* problem with the field, the value
and the fix::

    cfg = load_config(PullConfig, "jobs/configs/pull/smollm2.yaml", ["name=tiny"])
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import re
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def folder_name(value: str) -> str:
    """``value`` if it is safe as one folder name (a report, a run): 1-64 letters, digits,
    '.', '_' or '-', starting with a letter or digit, no '..'; a ValueError that says the fix
    otherwise. As a pydantic field type: :data:`FolderName`."""
    if not _FOLDER_NAME.fullmatch(value) or ".." in value:
        raise ValueError(
            "must be 1-64 letters, digits, '.', '_' or '-', start with a letter or digit and "
            "hold no '..' (it names a folder). Fix: e.g. 2026-12 or smollm2-support"
        )
    return value


FolderName = Annotated[str, AfterValidator(folder_name)]  # a config field that names a folder


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, what was given, what is wrong, how to fix it."""

    field: str
    value: Any
    message: str
    fix: str = ""

    def render(self) -> str:
        text = f"{self.field} = {self.value!r}: {self.message}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


class ConfigError(ValueError):
    """Every problem found in a config, reported together."""

    def __init__(self, source: str, problems: Sequence[Problem]):
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p.render()}" for p in self.problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''}\n{lines}")

    def __reduce__(self) -> tuple:  # picklable across Ray processes
        return (type(self), (self.source, self.problems))


class JobConfig(BaseModel):
    """Base of every job schema: unknown keys are errors; subclasses add cross-field checks."""

    model_config = ConfigDict(extra="forbid", validate_default=True, protected_namespaces=())

    def problems(self) -> list[Problem]:
        """Cross-field checks, run after every field is valid. Override in subclasses."""
        return []


M = TypeVar("M", bound=JobConfig)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[x, y]"]`` into a nested dict; values are parsed as YAML."""
    out: dict[str, Any] = {}
    bad = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            bad.append(
                Problem(
                    "override",
                    item,
                    "is not key=value",
                    "write overrides as key=value, e.g. lr=2e-4",
                )
            )
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                bad.append(
                    Problem("override", item, f"{part} is set both as a value and a section")
                )
                break
        else:
            node[parts[-1]] = value
    if bad:
        raise ConfigError("command-line overrides", bad)
    return out


def deep_merge(
    base: dict[str, Any], extra: dict[str, Any], *, none_removes: bool = False
) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, nested dicts key by key, ``extra`` winning; with
    ``none_removes`` a None in ``extra`` removes the key instead of setting it (pure: neither
    input is modified)."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if value is None and none_removes:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value, none_removes=none_removes)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            str(path),
            [
                Problem(
                    "--config",
                    str(path),
                    "no such file",
                    "check the path; shipped configs live under jobs/configs/<job>/",
                )
            ],
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        raise ConfigError(
            str(path), [Problem("(file)", where, f"is not valid YAML ({exc})", "fix the syntax")]
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), [Problem("(file)", type(data).__name__, "must be a mapping of keys")]
        )
    return data


def _model_at(schema: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested model that owns the last element of ``loc`` (for field-name suggestions),
    through lists and dicts of models (``api.0.output_usd_per_1m``)."""
    model: Any = schema
    key_next = False  # the next part is a list index or a dict key, not a field
    for part in loc[:-1]:
        if key_next:
            key_next = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = field.annotation
        inner = [
            a for a in typing.get_args(model) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if inner:
            key_next = typing.get_origin(model) in (list, dict, tuple)
            model = inner[-1]
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _field_help(schema: type[BaseModel], loc: tuple[Any, ...]) -> str:
    owner = _model_at(schema, loc)
    if owner is None or not loc:
        return ""
    field = owner.model_fields.get(str(loc[-1]))
    return (field.description or "") if field else ""


def problems_from_validation(schema: type[BaseModel], err: ValidationError) -> list[Problem]:
    """Translate pydantic's errors into problems that say the field, the value and the fix."""
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        field = ".".join(str(p) for p in loc) or "(config)"
        message = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        fix = ""
        if e["type"] == "extra_forbidden":
            owner = _model_at(schema, loc)
            known = sorted(owner.model_fields) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            message = "is not a known key"
            fix = (f"did you mean '{close[0]}'? " if close else "") + (
                f"known keys here: {', '.join(known)}" if known else "remove it"
            )
        elif e["type"] == "missing":
            value = None
            fix = f"add it: {_field_help(schema, loc)}".rstrip(": ")
        elif "Fix:" in message:
            message, _, fix = (s.strip() for s in message.partition("Fix:"))
        else:
            fix = _field_help(schema, loc)
        problems.append(Problem(field, value, message, fix))
    return problems


def validate(schema: type[M], data: dict[str, Any], source: str) -> M:
    """Build ``schema`` from ``data`` or raise one ConfigError listing every problem."""
    try:
        cfg = schema.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, problems_from_validation(schema, err)) from None
    cross = cfg.problems()
    if cross:
        raise ConfigError(source, cross)
    return cfg


def load_config(
    schema: type[M], path: str | Path | None = None, overrides: Sequence[str] = ()
) -> M:
    """Load a job config from YAML (optional) and ``key=value`` overrides."""
    data = _read_yaml(Path(path)) if path else {}
    data = deep_merge(data, parse_overrides(overrides))
    source = str(path) if path else "config"
    return validate(schema, data, source)


def _is_bool_field(schema: type[BaseModel], key: str) -> bool:
    owner = _model_at(schema, tuple(key.split(".")))
    field = owner.model_fields.get(key.split(".")[-1]) if owner else None
    return field is not None and field.annotation is bool


def args_to_overrides(schema: type[BaseModel], tokens: Sequence[str]) -> list[str]:
    """Accept ``--key value``, ``--key=value`` and bare ``--flag`` (bool fields) besides
    ``key=value``, so a job's CLI flags are just another spelling of its config fields."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--"):
            key, sep, value = tok[2:].partition("=")
            key = key.replace("-", "_")
            if not sep:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else None
                if _is_bool_field(schema, key) and (
                    nxt is None or nxt.startswith("--") or "=" in nxt
                ):
                    value = "true"
                elif nxt is not None:
                    value, i = nxt, i + 1
            out.append(f"{key}={value}")
        else:
            out.append(tok)
        i += 1
    return out


def cli_config(schema: type[M], description: str, argv: Sequence[str] | None = None) -> M:
    """Parse ``--config FILE [key=value | --key value ...]`` for a job entrypoint.

    Prints every problem and exits with status 2 on a bad config, or on a secret in the
    environment left at a placeholder or too short (cluster/secret_checks.py), before any work
    starts.
    """
    from cluster.secret_checks import startup_secret_problems

    fields = ", ".join(sorted(schema.model_fields))
    parser = argparse.ArgumentParser(
        description=description,
        epilog=f"Config fields (as key=value or --key value): {fields}. "
        "Exit codes: 0 done, 1 failed while running, 2 bad config or input.",
    )
    parser.add_argument("--config", help="YAML config file (see jobs/configs/)")
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = load_config(schema, args.config, args_to_overrides(schema, rest))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    secrets = startup_secret_problems(os.environ)
    if secrets:
        print("error: refusing to start:\n  - " + "\n  - ".join(secrets), file=sys.stderr)
        raise SystemExit(2)
    return cfg
