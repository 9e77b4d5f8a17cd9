"""Reading YAML configs strictly, and ``--set KEY=VALUE`` overrides: one loader and one parser for every config.

``load_yaml(path)`` refuses what ``yaml.safe_load`` would accept silently: a key given twice in one mapping (the
later value would win without a word), a file that is not UTF-8, and a top level that is not a mapping. Every
error is a ``ConfigError`` naming the file (and the line, where YAML gives one).

``parse_overrides(["finetune.max_steps=5", "domains.targets=[a, b]"])`` turns dotted keys into a nested dict
whose values are parsed as YAML; ``deep_merge`` lays such a dict over a loaded config.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from asr_analogy.errors import ConfigError


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys in a mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the default constructor reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (first on line {first.start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def loads_yaml(text: str, where: str = "<string>") -> Any:
    """Parse YAML ``text`` strictly (duplicate keys refused); ``where`` is named in the error."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({' '.join(str(exc).split())})") from None


def load_yaml(path: str | os.PathLike, what: str = "config", *, mapping: bool = True) -> Any:
    """Read the YAML file ``path`` strictly. An empty file gives ``{}``.

    ``what`` names the file in errors ("recipe config", "merge config"). With ``mapping`` (the default) the
    top level must be a mapping. Raises ``ConfigError`` for a missing, unreadable, non-UTF-8 or invalid file.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot be read ({exc.strerror})") from None
    data = loads_yaml(text, str(path))
    if data is None:
        data = {}
    if mapping and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_overrides(items: Iterable[str], option: str = "--set") -> dict:
    """``["finetune.max_steps=5", "domains.targets=[a, b]"]`` → ``{"finetune": {"max_steps": 5}, ...}``.

    Values are parsed as YAML (an empty value is ``None``). Raises ``ConfigError`` naming ``option`` and the item
    for a missing ``=``, an empty key or a value that is not valid YAML.
    """
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not sep:
            raise ConfigError(f"{option} {item!r}: expected KEY=VALUE (e.g. finetune.max_steps=20)")
        if not parts:
            raise ConfigError(f"{option} {item!r}: empty key")
        parsed = loads_yaml(value, f"{option} {item!r}") if value.strip() else None
        node = out
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{option} {item!r}: {p!r} was already set to a value")
            node = child
        node[parts[-1]] = parsed
    return out


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` laid over a copy of ``base``: nested dicts merge, anything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
