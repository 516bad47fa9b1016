"""The configuration reference, generated from the typed models of ``cdp_spark.config``.

``render()`` walks :class:`~cdp_spark.config.CdpConfig` and writes one Markdown section per model: its
docstring, then every key with its type, default and description. Nested models get their own section
under their dotted path (``identity.matching``; ``sources.<name>`` for maps, ``scores.segments[]`` for
lists). ``cdp config-reference`` writes it to ``docs/configuration.md``; a test keeps that file current.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cdp_spark.config import CdpConfig

HEADER = """# Configuration reference

Generated from the typed models in `cdp_spark/config.py` by `cdp config-reference`; do not edit by hand.

Configuration is layered, later wins: every `*.yaml` of `conf/base/` (alphabetical), then every `*.yaml` of
the environment overlay `conf/<env>/` (`--env`, default `local`), then `--set key.path=value` overrides
(values parsed as YAML, e.g. `--set identity.matching=null`). Every section rejects unknown keys, and an
error names the file or override that set the wrong key. `cdp show-config` prints the effective result.
Paths may use `{data_dir}` (`paths.data_dir`, or `--data-dir`) and `{conf_dir}` (`--conf`).
Secrets are never values: keys ending in `_env` name the environment variable that holds them.
"""


def _nested_models(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The models reachable from a field's type, with the path suffix that reaches them."""
    origin = typing.get_origin(annotation)
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    if origin in (typing.Union, types.UnionType):
        return [found for arg in typing.get_args(annotation) for found in _nested_models(arg)]
    if origin is dict:
        return [(".<name>" + suffix, model) for suffix, model in _nested_models(typing.get_args(annotation)[1])]
    if origin is list:
        return [("[]" + suffix, model) for suffix, model in _nested_models(typing.get_args(annotation)[0])]
    return []


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if inspect.isclass(annotation) and not typing.get_args(annotation) else str(annotation)
    text = re.sub(r"\b(typing|cdp_spark\.config)\.", "", text)
    text = re.sub(r"Literal\[(.*?)\]", lambda m: " \\| ".join(m.group(1).split(", ")), text)
    return text.replace(" | ", " \\| ").replace("NoneType", "None")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "(section)"
    text = json.dumps(value, default=str)
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"


def _constraints(field: FieldInfo) -> str:
    bounds = []
    for item in field.metadata:
        for name, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >="),
                             ("pattern", "matches")):
            value = getattr(item, name, None)
            if value is not None:
                bounds.append(f"{symbol} `{value}`")
    return f" ({', '.join(bounds)})" if bounds else ""


def _doc(model: type[BaseModel]) -> str:
    """The model's own docstring (not an inherited one)."""
    return inspect.cleandoc(model.__dict__.get("__doc__") or "")


def _section(path: str, model: type[BaseModel], out: list[str], seen: set[str]) -> None:
    if path in seen:
        return
    seen.add(path)
    out += [f"## `{path}`" if path else "## top level", ""]
    if _doc(model):
        out += [_doc(model).replace("\n", " "), ""]
    out += ["| key | type | default | description |", "|---|---|---|---|"]
    children: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        nested = [(f"{path}.{name}{suffix}".lstrip("."), found) for suffix, found in _nested_models(field.annotation)]
        description = " ".join((field.description or "").split()).replace("|", "\\|") + _constraints(field)
        if nested:
            description += f" (see `{nested[0][0]}`)"
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description.strip()} |")
        children += nested
    out.append("")
    for child_path, child in children:
        _section(child_path, child, out, seen)


def render() -> str:
    """The whole reference as Markdown."""
    out = [HEADER]
    _section("", CdpConfig, out, set())
    return "\n".join(out).rstrip() + "\n"


def write(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path
