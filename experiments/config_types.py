"""Strict YAML and typed dataclasses: what turns a config file into the layers' dataclasses.

- `StrictLoader`: yaml's safe loader that refuses a key given twice;
- `build(cls, data, path, ranges)`: a dataclass from a mapping, every field checked against
  its annotation (`coerce`) and, by field path, against `ranges`; an unknown key suggests
  the nearest one. Every error is a ConfigError naming the field path.

experiments/config.py composes the sections with these; the layers validate their own
values in their dataclasses' __post_init__.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing
from typing import Any

import yaml

from rlfarm.experiments.errors import ConfigError

MAX_INT = 2**62
"""Integers in a config are refused past this magnitude: counters, seeds and budgets must fit
the int64 arithmetic of numpy, torch and Ray."""
MAX_LIST_ITEMS = 10_000
"""Lists in a config (layer widths, module names) are refused past this length before their
items are checked: 10,000 layers is past any model that fits in memory, and the check of
millions of items would take as long as the YAML that made them."""
Ranges = dict[str, tuple[typing.Callable[[Any], bool], str]]
"""Field path -> (accept(value), what the value must be)."""


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """yaml's safe loader (the C one where libyaml is present: large files parse in a fraction
    of the pure-Python loader's time) that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges; its keys may be overridden
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """One YAML value (as an --set value) with StrictLoader."""
    return yaml.load(text, Loader=StrictLoader)


def build(cls: type, data: Any, path: str, ranges: Ranges) -> Any:
    """An instance of the dataclass `cls` from the mapping `data`, every field type-checked
    (`coerce`) and range-checked (`ranges`, by field path); errors name the field path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of fields, got {type_name(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"{where}: unknown key{hint}")
        kwargs[key] = coerce(hints[key], value, where, ranges)
        if where in ranges:
            accept, message = ranges[where]
            if kwargs[key] is not None and not accept(kwargs[key]):
                raise ConfigError(f"{where}: {message}, got {value!r}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # the layer's own validation: "field: what is wrong"
        message = str(err)
        head = message.split(":", 1)[0].strip()
        if path and head.startswith(f"{path}.") and head[len(path) + 1:] in fields:
            raise ConfigError(message) from None  # already prefixed by the layer
        if head in fields:
            raise ConfigError(f"{path}.{message}" if path else message) from None
        raise ConfigError(f"{path or 'config'}: {message}") from None


def coerce(tp: Any, value: Any, where: str, ranges: Ranges) -> Any:
    """Check `value` against the annotation `tp`; convert lists to tuples and ints to floats."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, where, ranges)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: expected {hint_name(tp)}, got {type_name(value)} {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: must be one of {', '.join(map(str, args))}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where, ranges)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {type_name(value)} {value!r}")
    if tp is int:
        number = as_number(value)
        if isinstance(number, int) or (isinstance(number, float) and number.is_integer()):
            if abs(number) > MAX_INT:
                raise ConfigError(f"{where}: {value!r} is out of range (at most 2**62 in magnitude)")
            return int(number)
        raise ConfigError(f"{where}: expected an integer, got {type_name(value)} {value!r}")
    if tp is float:
        number = as_number(value)
        if number is not None:
            if not math.isfinite(float(number)):
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return float(number)
        raise ConfigError(f"{where}: expected a number, got {type_name(value)} {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {type_name(value)} {value!r}")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type_name(value)} {value!r}")
        if len(value) > MAX_LIST_ITEMS:
            raise ConfigError(f"{where}: {len(value):,} items, more than the {MAX_LIST_ITEMS:,} a config list may have")
        item_type = args[0] if args else Any
        items = [coerce(item_type, item, f"{where}[{i}]", ranges) for i, item in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type_name(value)} {value!r}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): coerce(value_type, v, f"{where}.{k}", ranges) for k, v in value.items()}
    return value  # an annotation this checker does not know: the layer validates it


def as_number(value: Any) -> int | float | None:
    """int/float (not bool) as is; strings such as '5e5' (YAML 1.1 reads them as strings) parsed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, numbers.Integral):  # numpy's integers (the API)
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null",
            int: "integer", float: "number"}.get(type(value), type(value).__name__)


def hint_name(tp: Any) -> str:
    return " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(tp) if a is not type(None))
