"""Checks of a client's JSON schema (`response_format`) before it reaches a grammar compiler:
a schema that cannot mean anything, or that asks more work of the grammar compiler than the
bounds below allow, is the client's mistake, answered with a 400 that says where and which
bound, never a failure (or minutes of compiling) deep in the engine.

    check_json_schema({"type": "strng"})  # ValueError: schema.type: unknown type 'strng'; ...
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
# (lower, upper) keyword pairs: lower > upper leaves nothing to generate.
BOUNDS = [
    ("minimum", "maximum"),
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
    ("minContains", "maxContains"),
]
COUNTS = ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains"]
MAX_COUNT = 100_000  # a longer string or array than any answer can hold is a mistake, not a wish
MAX_DEPTH = 64
SUBSCHEMA = ["items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames",
             "unevaluatedItems", "unevaluatedProperties", "additionalItems"]
SUBSCHEMA_LISTS = ["anyOf", "oneOf", "allOf", "prefixItems"]
SUBSCHEMA_MAPS = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]


# Bounds on the work one schema may ask of the grammar compiler (each over-bound schema is a 400
# naming the bound): a 100,000-string enum compiles for minutes and keeps ~400 MB.
MAX_SCHEMA_SIZE = 65_536  # characters of its strings plus one per value, all together
MAX_ENUM = 1_000  # values of one enum, and schemas of one anyOf/oneOf/allOf
MAX_STRING = 1_000  # characters of one string in it (an enum value, a pattern, a property name)


def check_json_schema(schema: Any) -> None:
    """Raise ValueError naming the first problem and where it is (a path of keys)."""
    _check_size(schema)
    _check(schema, schema, ["schema"], 0)


def _check_size(schema: Any) -> None:
    """The schema's bounds, walked with a stack of its own (any nesting a client sends)."""
    size = 0
    stack: list[tuple[Any, str, int]] = [(schema, "schema", 0)]
    while stack:
        node, where, depth = stack.pop()
        size += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, str):
            if len(node) > MAX_STRING:
                raise ValueError(f"{where}: a string of {len(node):,} characters; at most {MAX_STRING:,} in a schema")
            size += len(node)
        elif isinstance(node, dict):
            if isinstance(node.get("enum"), list) and len(node["enum"]) > MAX_ENUM:
                raise ValueError(f"{where}.enum: {len(node['enum']):,} values; at most {MAX_ENUM:,} per enum")
            for key in SUBSCHEMA_LISTS:
                if isinstance(node.get(key), list) and len(node[key]) > MAX_ENUM:
                    raise ValueError(f"{where}.{key}: {len(node[key]):,} schemas; at most {MAX_ENUM:,}")
            for key, value in node.items():
                if len(str(key)) > MAX_STRING:
                    raise ValueError(f"{where}: a key of {len(str(key)):,} characters; at most {MAX_STRING:,} in a schema")
                size += len(str(key))
                stack.append((value, f"{where}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((value, f"{where}.{i}", depth + 1) for i, value in enumerate(node))
        if size > MAX_SCHEMA_SIZE:
            raise ValueError(f"{where}: the schema is larger than {MAX_SCHEMA_SIZE:,} characters; send a smaller one")


def _check(node: Any, root: Any, path: list[str], depth: int) -> None:
    where = ".".join(path)
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        raise ValueError(f"{where}: a schema must be an object or a boolean, not {type(node).__name__}")
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    _check_keywords(node, root, where)
    for key in SUBSCHEMA:
        if key in node:
            value = node[key]
            if isinstance(value, list) and key == "items":  # the older tuple form
                for i, sub in enumerate(value):
                    _check(sub, root, [*path, key, str(i)], depth + 1)
            else:
                _check(value, root, [*path, key], depth + 1)
    for key in SUBSCHEMA_LISTS:
        if key in node:
            if not isinstance(node[key], list) or not node[key]:
                raise ValueError(f"{where}.{key}: must be a non-empty list of schemas")
            for i, sub in enumerate(node[key]):
                _check(sub, root, [*path, key, str(i)], depth + 1)
    for key in SUBSCHEMA_MAPS:
        if key in node:
            if not isinstance(node[key], dict):
                raise ValueError(f"{where}.{key}: must be an object of schemas")
            for name, sub in node[key].items():
                if key == "patternProperties":
                    _pattern(name, f"{where}.{key}")
                _check(sub, root, [*path, key, name], depth + 1)


def _check_keywords(node: dict[str, Any], root: Any, where: str) -> None:
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        for t in types:
            if t not in TYPES:
                raise ValueError(f"{where}.type: unknown type {t!r}; JSON schema types are {', '.join(sorted(TYPES))}")
    if "$ref" in node:
        _resolve(node["$ref"], root, f"{where}.$ref")
    if "pattern" in node:
        _pattern(node["pattern"], f"{where}.pattern")
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        raise ValueError(f"{where}.enum: must be a non-empty list (an empty enum allows no value)")
    if "required" in node and not (
        isinstance(node["required"], list) and all(isinstance(r, str) for r in node["required"])
    ):
        raise ValueError(f"{where}.required: must be a list of property names")
    for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", *COUNTS]:
        if key in node and (isinstance(node[key], bool) or not isinstance(node[key], (int, float))):
            raise ValueError(f"{where}.{key}: must be a number")
    for key in COUNTS:
        if key in node and not (isinstance(node[key], int) and 0 <= node[key] <= MAX_COUNT):
            raise ValueError(f"{where}.{key}: must be a whole number from 0 to {MAX_COUNT}")
    if "multipleOf" in node and not node["multipleOf"] > 0:
        raise ValueError(f"{where}.multipleOf: must be greater than 0")
    for low, high in BOUNDS:
        if low in node and high in node and node[low] > node[high]:
            raise ValueError(f"{where}: {low} {node[low]} is above {high} {node[high]}; no value fits")
    low = max((node[k] for k in ("minimum", "exclusiveMinimum") if k in node), default=None)
    high = min((node[k] for k in ("maximum", "exclusiveMaximum") if k in node), default=None)
    exclusive = "exclusiveMinimum" in node or "exclusiveMaximum" in node
    if low is not None and high is not None and exclusive and low >= high:
        raise ValueError(f"{where}: the exclusive bounds leave no number between {low} and {high}")


def _pattern(pattern: Any, where: str) -> None:
    if not isinstance(pattern, str):
        raise ValueError(f"{where}: must be a regular expression string")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{where}: not a valid regular expression ({exc})") from None


def _resolve(ref: Any, root: Any, where: str) -> None:
    """A $ref must point inside this schema ("#", "#/$defs/Name", ...); remote ones are refused."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise ValueError(f"{where}: only references inside the schema (\"#/...\") are supported, not {ref!r}")
    node = root
    for part in [p for p in ref[1:].split("/") if p]:
        key = unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise ValueError(f"{where}: {ref!r} points at nothing in the schema")
