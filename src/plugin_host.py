"""mcpgw's plugin host: runs mcp-unify-style Python plugins and serves their tools over MCP.

The daemon starts one host per group of `plugins:` entries (python interpreter, import path and
settings alike) and supervises it like any stdio server. The host needs nothing but the
standard library: it provides the `mcp_gateway` module plugins import (`tool`, `register_tool`),
imports the configured modules, builds each tool's JSON Schemas from its type hints and
docstring, and answers `initialize`, `tools/list`, `tools/call` and `ping` on stdin/stdout.

The daemon passes this program in the environment (MCPGW_PLUGIN_HOST, popped at once) and runs
it with `python -c`; what to load comes as the one argument, a JSON object:
`{"modules": [...], "paths": [...], "check": false}`. With `"check": true` the host imports the
modules, prints one JSON line (`{"tools": [...], "problems": [...]}`) and exits: that is how
`mcpgwctl check` finds a plugin that does not import.

Sync functions run on a pool of threads (at most 64 at once) and async ones on the event
loop, so calls run concurrently; `notifications/cancelled` cancels an async call (a thread
cannot be stopped: its answer is dropped). Nothing a message holds ends the host: it serves
every session, and an error costs that one answer. A module that fails to import is reported (the traceback on stderr, its
last line in `initialize`'s `_meta["mcpgw/problems"]`) and the others are served.
"""

import asyncio
import collections.abc
import concurrent.futures
import dataclasses
import datetime
import enum
import functools
import importlib
import inspect
import json
import os
import pathlib
import re
import sys
import threading
import traceback
import types
import typing

HOST_NAME = "mcpgw-plugins"
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
FALLBACK_PROTOCOL_VERSION = "2025-06-18"
# mcp-unify's marker attribute, so that a function decorated by the real package works too.
TOOL_MARKER = "__mcp_gateway_tool__"
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# Nested types deeper than this (a recursive dataclass) become "any value".
MAX_SCHEMA_DEPTH = 12
# One line from the daemon; the daemon's own limit on a message is 64 MiB by default.
MAX_LINE = 256 << 20
# Sync tools run on a pool of threads; a cancelled one cannot be stopped and keeps its thread
# until it returns. Past this many at once a sync call is refused, saying why.
MAX_SYNC_THREADS = 64
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What the host keeps of its problems (the daemon keeps 32).
MAX_PROBLEMS = 32
# The daemon writes a request's id first: an unparseable one is still answered by its id.
LEADING_ID = re.compile(
    rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,256}")(?=\s*[,}])'
)


def log(message):
    print(f"mcpgw plugin host: {message}", file=sys.stderr, flush=True)


# ── The `mcp_gateway` module plugins import ────────────────────────────────────────────────


class Registry:
    """Every tool: decorated functions found in the modules, and `register_tool` calls."""

    def __init__(self):
        self.tools = {}
        self.problems = []
        self.importing = None
        self.lock = threading.Lock()
        # Set once serving: a later `register_tool` tells the client its list changed.
        self.on_change = None

    def add(self, fn, name, description, module):
        try:
            tool = Tool(fn, name, description, module)
        except Exception as e:  # a hint the schema builder cannot read, a bad description
            self.problem(f"tool `{name}` of module `{module}` is skipped: {said(e)}")
            return
        with self.lock:
            known = self.tools.get(tool.name)
            if known is not None and known.fn is fn:
                return
            if known is not None:
                self.problem(
                    f"tool `{tool.name}` of module `{module}` is skipped: module "
                    f"`{known.module}` already defines a tool of that name"
                )
                return
            self.tools[tool.name] = tool
        if self.on_change is not None:
            self.on_change()

    def problem(self, text):
        log(text)
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


REGISTRY = Registry()


def tool(description="", name=None):
    """Marks a function as a tool (mcp-unify's decorator): `@tool(description="Add")`."""
    if callable(description) and name is None:  # used bare: `@tool`
        fn = description
        setattr(fn, TOOL_MARKER, {"name": fn.__name__, "description": ""})
        return fn

    def decorator(fn):
        setattr(fn, TOOL_MARKER, {"name": name or fn.__name__, "description": description})
        return fn

    return decorator


def register_tool(fn, name=None, description=None):
    """Registers a function as a tool without the decorator (mcp-unify's `register_tool`)."""
    module = REGISTRY.importing or getattr(fn, "__module__", None) or "?"
    REGISTRY.add(fn, name or fn.__name__, description or "", module)


def install_api():
    api = types.ModuleType("mcp_gateway")
    api.__doc__ = "mcpgw's plugin API, compatible with mcp-unify 0.2.0."
    api.__version__ = "0.2.0+mcpgw"
    api.tool = tool
    api.register_tool = register_tool
    api.__all__ = ["tool", "register_tool"]
    sys.modules["mcp_gateway"] = api
    # mcp-unify defines the decorator there; a plugin may import it from its home.
    sys.modules["mcp_gateway._types"] = api


def load_modules(names):
    for name in names:
        REGISTRY.importing = name
        try:
            module = importlib.import_module(name)
        except BaseException as e:  # a plugin's SystemExit must not end the host either
            if isinstance(e, KeyboardInterrupt):
                raise
            try:
                traceback.print_exc(file=sys.stderr)
            except Exception:
                pass
            REGISTRY.problem(f"plugin module `{name}` failed to import: {last_line(e)}")
            continue
        finally:
            REGISTRY.importing = None
        found = 0
        for attribute in sorted(vars(module)):
            try:  # a proxy object (flask's `request`) may raise anything when looked at
                fn = getattr(module, attribute, None)
                meta = getattr(fn, TOOL_MARKER, None) if callable(fn) else None
            except Exception:
                continue
            if isinstance(meta, dict):
                REGISTRY.add(fn, meta.get("name") or fn.__name__, meta.get("description"), name)
                found += 1
        if found == 0 and not any(t.module == name for t in REGISTRY.tools.values()):
            log(f"plugin module `{name}` defines no tools (decorate functions with @tool)")


def said(error):
    """An exception's message; its type's name when it has none, or when saying it fails."""
    try:
        return str(error) or type(error).__name__
    except Exception:
        return type(error).__name__


def last_line(error):
    """What a traceback's last line says: `NameError: name 'x' is not defined`."""
    try:
        if isinstance(error, SyntaxError):
            return f"{type(error).__name__}: {error}"
        lines = traceback.format_exception_only(type(error), error)
        return lines[-1].strip() if lines else type(error).__name__
    except Exception:
        return type(error).__name__


# ── A tool: its schemas, its arguments, its result ────────────────────────────────────────


class ArgumentError(Exception):
    pass


class Tool:
    def __init__(self, fn, name, description, module):
        if not TOOL_NAME.match(name or ""):
            raise ValueError(
                f"`{name}` is not a valid tool name (1 to 128 letters, digits, `_`, `-`, `.`)"
            )
        self.fn, self.name, self.module = fn, name, module
        self.is_async = is_async_callable(fn)
        signature = inspect.signature(fn)
        hints = type_hints(fn)
        doc = Docstring(inspect.getdoc(fn) or "")
        self.description = description or doc.summary or name
        self.params = {}
        self.takes_any = False
        properties, required = {}, []
        for param in signature.parameters.values():
            if param.kind == param.VAR_KEYWORD:
                self.takes_any = True
                continue
            if param.kind == param.VAR_POSITIONAL or param.name in ("self", "cls"):
                continue
            hint = hints.get(param.name, inspect.Parameter.empty)
            schema = dict(Schemas().of(hint))
            text = doc.params.get(param.name)
            if text and "description" not in schema:
                schema["description"] = text
            if param.default is inspect.Parameter.empty:
                required.append(param.name)
            else:
                default = jsonable(param.default)
                if default is not NOT_JSON:
                    schema["default"] = default
            properties[param.name] = schema
            self.params[param.name] = (hint, param)
        self.input_schema = {"type": "object", "properties": properties}
        if required:
            self.input_schema["required"] = required
        self.output_schema, self.wraps = output_schema(hints.get("return", inspect.Parameter.empty))
        if not isinstance(self.description, str):
            raise ValueError("its description is not a string")
        # What is listed must be JSON (an Enum whose values are functions is not).
        try:
            json.dumps(self.listing(), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"its schema is not JSON ({e})") from None

    def listing(self):
        item = {"name": self.name, "description": self.description, "inputSchema": self.input_schema}
        if self.output_schema is not None:
            item["outputSchema"] = self.output_schema
        return item

    def arguments(self, given):
        if not isinstance(given, dict):
            raise ArgumentError("the arguments must be an object")
        kwargs = {}
        for name, value in given.items():
            if name not in self.params:
                if self.takes_any:
                    kwargs[name] = value
                    continue
                raise ArgumentError(f"unknown argument `{name}`")
            hint, _ = self.params[name]
            kwargs[name] = convert(hint, value, name)
        for name, (_, param) in self.params.items():
            if name not in kwargs and param.default is inspect.Parameter.empty:
                raise ArgumentError(f"missing required argument `{name}`")
        return kwargs

    def result(self, value):
        """A `tools/call` result: text for a string, text plus structuredContent otherwise."""
        if self.output_schema is None and isinstance(value, str):
            return {"content": [text(value)]}
        if value is None and self.output_schema is None:
            return {"content": []}
        data = jsonable(value)
        if data is NOT_JSON:
            if self.output_schema is not None:
                raise ArgumentError(
                    f"the tool returned {type(value).__name__} {str(value)[:100]!r}, which JSON "
                    "cannot carry, where its return hint promises structured content"
                )
            return {"content": [text(str(value))]}
        if self.wraps or not isinstance(data, dict):
            if self.output_schema is not None and not self.wraps:
                raise ArgumentError(
                    f"the tool returned {json_type(data)} where its return hint says an object"
                )
            structured = {"result": data}
        else:
            structured = data
        if isinstance(data, str):
            shown = data
        elif isinstance(data, dict):
            shown = json.dumps(data, ensure_ascii=False, indent=2)
        else:
            shown = json.dumps(data, ensure_ascii=False)
        return {"content": [text(shown)], "structuredContent": structured}


def is_async_callable(fn):
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def type_hints(fn):
    """Resolved hints (string ones too, `from __future__ import annotations`); a hint that
    cannot be resolved counts as none rather than losing the tool."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        target = fn.__call__ if not inspect.isroutine(fn) and hasattr(fn, "__call__") else fn
        raw = getattr(target, "__annotations__", {}) or {}
        return {k: v for k, v in raw.items() if not isinstance(v, str)}


def text(value):
    return {"type": "text", "text": value}


def json_type(value):
    return {
        dict: "an object", list: "an array", str: "a string", bool: "a boolean",
        int: "an integer", float: "a number", type(None): "null",
    }.get(type(value), type(value).__name__)


NOT_JSON = object()


def jsonable(value, depth=0):
    """`value` as JSON data (Enum → its value, dataclass → object, tuple → array, …), or
    NOT_JSON."""
    if depth > 64:
        return NOT_JSON
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else NOT_JSON
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                return NOT_JSON
            item = jsonable(item, depth + 1)
            if item is NOT_JSON:
                return NOT_JSON
            out[key] = item
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(item, depth + 1) for item in value]
        return NOT_JSON if any(item is NOT_JSON for item in items) else items
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, pathlib.PurePath):
        return str(value)
    return NOT_JSON


# ── JSON Schema from type hints ───────────────────────────────────────────────────────────

PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean"}
NONE_TYPES = (type(None), None)


def is_typeddict(hint):
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__total__")


def union_members(hint):
    origin = typing.get_origin(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return typing.get_args(hint)
    return None


class Schemas:
    def __init__(self):
        self.depth = 0

    def of(self, hint):
        if self.depth > MAX_SCHEMA_DEPTH:
            return {}
        self.depth += 1
        try:
            return self.build(hint)
        finally:
            self.depth -= 1

    def build(self, hint):
        if hint is inspect.Parameter.empty or hint is typing.Any or hint is object:
            return {}
        if hint in NONE_TYPES:
            return {"type": "null"}
        if hint in PRIMITIVES:
            return {"type": PRIMITIVES[hint]}
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is typing.Annotated:
            schema = dict(self.of(args[0]))
            for extra in args[1:]:
                if isinstance(extra, str):
                    schema["description"] = extra
            return schema
        members = union_members(hint)
        if members is not None:
            nullable = any(m in NONE_TYPES for m in members)
            rest = [m for m in members if m not in NONE_TYPES]
            inner = [self.of(m) for m in rest]
            if len(inner) == 1:
                schema = inner[0]
                kind = schema.get("type")
                if nullable and isinstance(kind, str) and set(schema) <= {"type", "items", "additionalProperties", "format"}:
                    return {**schema, "type": [kind, "null"]}
                return {"anyOf": [schema, {"type": "null"}]} if nullable else schema
            return {"anyOf": inner + ([{"type": "null"}] if nullable else [])}
        if origin is typing.Literal:
            values = [jsonable(v) for v in args]
            schema = {"enum": values}
            kinds = {json_schema_type(v) for v in values}
            if len(kinds) == 1:
                schema["type"] = kinds.pop()
            return schema
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            values = [jsonable(m.value) for m in hint]
            schema = {"enum": values, "title": hint.__name__}
            kinds = {json_schema_type(v) for v in values}
            if len(kinds) == 1:
                schema["type"] = kinds.pop()
            return schema
        if is_typeddict(hint):
            hints = type_hints(hint)
            required = sorted(getattr(hint, "__required_keys__", hints.keys()))
            return self.object(hint.__name__, hints, required, own_doc(hint))
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            hints = type_hints(hint)
            fields = [f for f in dataclasses.fields(hint) if f.init]
            required = [
                f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            return self.object(hint.__name__, {f.name: hints.get(f.name, inspect.Parameter.empty) for f in fields}, required, None)
        if origin in (list, set, frozenset, tuple) or hint in (list, set, frozenset, tuple) or origin in SEQUENCES:
            if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                items = [self.of(a) for a in args]
                return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
            schema = {"type": "array"}
            if args:
                item = self.of(args[0])
                if item:
                    schema["items"] = item
            if origin in (set, frozenset) or hint in (set, frozenset):
                schema["uniqueItems"] = True
            return schema
        if origin is dict or hint is dict or origin in MAPPINGS:
            schema = {"type": "object"}
            if len(args) == 2:
                value = self.of(args[1])
                if value:
                    schema["additionalProperties"] = value
            return schema
        if hint is datetime.datetime:
            return {"type": "string", "format": "date-time"}
        if hint is datetime.date:
            return {"type": "string", "format": "date"}
        if isinstance(hint, type) and issubclass(hint, pathlib.PurePath):
            return {"type": "string"}
        return {}

    def object(self, title, hints, required, doc):
        properties = {name: self.of(hint) for name, hint in hints.items()}
        schema = {"type": "object", "title": title, "properties": properties}
        if required:
            schema["required"] = list(required)
        if doc:
            schema["description"] = doc
        return schema


SEQUENCES = (collections.abc.Sequence, collections.abc.Iterable)
MAPPINGS = (collections.abc.Mapping,)


def own_doc(cls):
    """A class's own docstring, not one it inherits (a TypedDict's would be dict's)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def json_schema_type(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "object"


def output_schema(hint):
    """(schema, wraps): an object hint's schema as is; any other hint's under `result`, as
    the official SDK wraps it. No schema for no hint, `str`, `None` and `Any`."""
    if hint is inspect.Parameter.empty or hint in (str, typing.Any) or hint in NONE_TYPES:
        return None, False
    schema = Schemas().of(hint)
    if not schema:
        return None, False
    if schema.get("type") == "object":
        return schema, False
    return {"type": "object", "properties": {"result": schema}, "required": ["result"]}, True


# ── JSON arguments → Python values ────────────────────────────────────────────────────────


def convert(hint, value, where):
    if hint is inspect.Parameter.empty or hint is typing.Any or hint is object:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return convert(args[0], value, where)
    members = union_members(hint)
    if members is not None:
        if value is None and any(m in NONE_TYPES for m in members):
            return None
        problems = []
        for member in members:
            if member in NONE_TYPES:
                continue
            try:
                return convert(member, value, where)
            except ArgumentError as e:
                problems.append(str(e))
        raise ArgumentError(problems[0] if len(problems) == 1 else f"argument `{where}` has no allowed type")
    if hint in NONE_TYPES:
        if value is not None:
            raise wrong(where, "null", value)
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong(where, "a boolean", value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise wrong(where, "an integer", value)
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong(where, "a number", value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise wrong(where, "a string", value)
        return value
    if origin is typing.Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            raise ArgumentError(f"argument `{where}` must be one of {json.dumps([jsonable(a) for a in args])}")
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        for member in hint:
            if member.value == value and type(jsonable(member.value)) is type(value):
                return member
        values = json.dumps([jsonable(m.value) for m in hint])
        raise ArgumentError(f"argument `{where}` must be one of {values}")
    if is_typeddict(hint) or (dataclasses.is_dataclass(hint) and isinstance(hint, type)):
        if not isinstance(value, dict):
            raise wrong(where, "an object", value)
        hints = type_hints(hint)
        converted = {k: convert(hints.get(k, inspect.Parameter.empty), v, f"{where}.{k}") for k, v in value.items()}
        if is_typeddict(hint):
            return converted
        try:
            return hint(**converted)
        except TypeError as e:
            raise ArgumentError(f"argument `{where}`: {e}") from None
    if origin in (list, set, frozenset, tuple) or hint in (list, set, frozenset, tuple) or origin in SEQUENCES:
        if not isinstance(value, list):
            raise wrong(where, "an array", value)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ArgumentError(f"argument `{where}` must have {len(args)} items")
            return tuple(convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else inspect.Parameter.empty
        items = [convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        kind = origin or hint
        return kind(items) if kind in (set, frozenset, tuple) else items
    if origin is dict or hint is dict or origin in MAPPINGS:
        if not isinstance(value, dict):
            raise wrong(where, "an object", value)
        item = args[1] if len(args) == 2 else inspect.Parameter.empty
        return {k: convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if hint in (datetime.datetime, datetime.date):
        if not isinstance(value, str):
            raise wrong(where, "a string", value)
        try:
            return hint.fromisoformat(value)
        except ValueError:
            raise ArgumentError(f"argument `{where}` must be an ISO 8601 date") from None
    if isinstance(hint, type) and issubclass(hint, pathlib.PurePath) and isinstance(value, str):
        return hint(value)
    return value


def wrong(where, expected, value):
    return ArgumentError(f"argument `{where}` must be {expected}, not {json_type(value)}")


# ── Docstrings: the summary, and each parameter's text ─────────────────────────────────────

SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|"
    r"Returns|Return|Yields|Raises|Examples?|Notes?|Attributes|See Also|References|Warnings?)\s*:?\s*$"
)
GOOGLE_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
NUMPY_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(:.*)?$")
SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


class Docstring:
    """Google (`Args:`), NumPy (`Parameters` over dashes) and Sphinx (`:param x:`) styles."""

    PARAM_SECTIONS = (
        "Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments",
        "Other Parameters",
    )

    def __init__(self, doc):
        lines = doc.splitlines()
        self.params = {}
        summary, i = [], 0
        while i < len(lines):
            header = section_header(lines, i)
            if header is not None:
                name, numpy = header
                body, i = section_body(lines, i + (2 if numpy else 1), numpy)
                if name in self.PARAM_SECTIONS:
                    self.parse_params(body, numpy)
                continue
            line = lines[i].strip()
            sphinx = SPHINX_PARAM.match(line)
            if sphinx:
                self.params[sphinx.group(1)] = sphinx.group(2).strip()
            elif not line.startswith(":"):
                summary.append(lines[i])
            i += 1
        self.summary = "\n".join(summary).strip()

    def parse_params(self, body, numpy):
        indents = [len(line) - len(line.lstrip()) for line in body if line.strip()]
        base = min(indents, default=0)
        name = None
        for line in body:
            stripped = line.strip()
            if not stripped:
                continue
            if len(line) - len(line.lstrip()) == base:
                match = (NUMPY_PARAM if numpy else GOOGLE_PARAM).match(stripped)
                if match:
                    name = match.group(1).lstrip("*")
                    self.params[name] = "" if numpy else match.group(3).strip()
                    continue
            if name is not None:
                self.params[name] = f"{self.params[name]} {stripped}".strip()


def section_header(lines, i):
    """(name, numpy) if line `i` starts a section: `Args:` (Google) or a name over dashes."""
    line = lines[i]
    match = SECTION.match(line.strip()) if line[:1].strip() else None
    if match is None:
        return None
    numpy = i + 1 < len(lines) and re.match(r"^\s*-{3,}\s*$", lines[i + 1]) is not None
    if not numpy and not line.rstrip().endswith(":"):
        return None
    return match.group(1), numpy


def section_body(lines, start, numpy):
    """A section's lines: Google's end at the first unindented line, NumPy's (whose names are
    unindented) at the next section."""
    body, i = [], start
    while i < len(lines):
        line = lines[i]
        if line[:1].strip() and (not numpy or section_header(lines, i) is not None):
            break
        body.append(line)
        i += 1
    return body, i


# ── MCP on stdio ──────────────────────────────────────────────────────────────────────────


class Host:
    def __init__(self, out):
        self.out = out
        self.loop = asyncio.get_running_loop()
        self.pool = concurrent.futures.ThreadPoolExecutor(MAX_SYNC_THREADS, thread_name_prefix="plugin")
        self.threads = threading.BoundedSemaphore(MAX_SYNC_THREADS)
        self.writing = threading.Lock()
        self.calls = {}

    def send(self, message):
        """Writes one message; pool threads answer too, so whole lines under a lock."""
        try:
            line = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as e:
            if "id" not in message:
                return
            message = {"jsonrpc": "2.0", "id": message["id"],
                       "error": {"code": -32603, "message": f"the answer is not JSON: {e}"}}
            line = json.dumps(message)
        # A lone surrogate (from a file name read with surrogateescape) is not UTF-8: it
        # becomes U+FFFD rather than bytes no client can read.
        try:
            data = line.encode("utf-8")
        except UnicodeEncodeError:
            data = LONE_SURROGATE.sub("\ufffd", line).encode("utf-8", "replace")
        with self.writing:
            self.out.write(data + b"\n")
            self.out.flush()

    def answer(self, id, result):
        self.send({"jsonrpc": "2.0", "id": id, "result": result})

    def fail(self, id, code, message):
        self.send({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})

    def list_changed(self):
        self.send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})

    async def serve(self, reader):
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:
                if e.partial.strip():
                    self.handle(e.partial)
                break
            except asyncio.LimitOverrunError:
                self.fail(None, -32600, "message too long")
                break
            if line.strip():
                self.handle(line)
        for task in list(self.calls.values()):
            task.cancel()

    def handle(self, line):
        """One message. Nothing in it may end the host, which serves every session."""
        try:
            self.dispatch(line)
        except Exception as e:  # a bug here must cost one answer, not the host
            traceback.print_exc(file=sys.stderr)
            self.fail(leading_id(line), -32603, f"internal error: {type(e).__name__}")

    def dispatch(self, line):
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as e:
            # Too deep, or an integer past Python's digit limit: answered by its id if the
            # line starts as the daemon writes requests.
            why = "nested too deeply" if isinstance(e, RecursionError) else "not valid JSON"
            self.fail(leading_id(line), -32700, f"parse error: the message is {why}")
            return
        if not isinstance(message, dict):
            self.fail(None, -32600, "invalid request: not an object")
            return
        method, id = message.get("method"), message.get("id")
        params = message.get("params") or {}
        if not isinstance(method, str):
            return  # a response: the host asks nothing
        if "id" not in message:
            if method == "notifications/cancelled" and isinstance(params, dict):
                task = self.calls.pop(key(params.get("requestId")), None)
                if task is not None:
                    task.cancel()
            return
        if method == "initialize":
            self.answer(id, self.initialize(params))
        elif method == "ping":
            self.answer(id, {})
        elif method == "tools/list":
            with REGISTRY.lock:
                tools = [t.listing() for _, t in sorted(REGISTRY.tools.items())]
            self.answer(id, {"tools": tools})
        elif method == "tools/call":
            self.call(id, params)
        else:
            self.fail(id, -32601, f"method not found: {method}")

    def initialize(self, params):
        asked = params.get("protocolVersion") if isinstance(params, dict) else None
        version = asked if asked in PROTOCOL_VERSIONS else FALLBACK_PROTOCOL_VERSION
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": HOST_NAME, "version": "1"},
        }
        if REGISTRY.problems:
            result["_meta"] = {"mcpgw/problems": list(REGISTRY.problems)}
        return result

    def call(self, id, params):
        """`tools/call`: arguments checked here; an async tool runs as a task on the loop, a
        sync one on a pool thread that answers itself (one hand-over, not two: the loop is
        not woken to pass the answer on)."""
        name = params.get("name") if isinstance(params, dict) else None
        tool = REGISTRY.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            self.fail(id, -32602, f"unknown tool: {name}")
            return
        try:
            kwargs = tool.arguments(params.get("arguments") or {})
        except ArgumentError as e:
            self.answer(id, {"content": [text(str(e))], "isError": True})
            return
        if tool.is_async:
            task = self.loop.create_task(self.call_async(id, tool, kwargs))
            self.calls[key(id)] = task
            task.add_done_callback(lambda _: self.calls.pop(key(id), None))
            return
        # A cancelled sync call keeps its thread until it returns, so a full pool refuses
        # more rather than queue them behind calls that may never end.
        if not self.threads.acquire(blocking=False):
            message = (
                f"{MAX_SYNC_THREADS} sync plugin calls are running (some may never return); "
                "`mcpgwctl kill` the plugin host to stop them"
            )
            self.answer(id, {"content": [text(message)], "isError": True})
            return
        call = SyncCall()
        self.calls[key(id)] = call
        try:
            self.pool.submit(self.run_sync, id, tool, kwargs, call)
        except BaseException:
            self.threads.release()
            self.calls.pop(key(id), None)
            raise

    def run_sync(self, id, tool, kwargs, call):
        """On a pool thread. The pool is never shut down with work queued, so every job runs
        and gives its place back."""
        try:
            value = tool.fn(**kwargs)
            if inspect.isawaitable(value):
                # A sync function that returned a coroutine: the loop finishes it.
                self.loop.call_soon_threadsafe(self.finish_on_loop, id, tool, value, call)
                return
            result = self.outcome(tool, lambda: tool.result(value))
        except BaseException as e:
            result = self.raised(tool, e)
        finally:
            self.threads.release()
        self.loop.call_soon_threadsafe(self.calls.pop, key(id), None)
        if not call.cancelled:
            self.answer(id, result)

    def finish_on_loop(self, id, tool, awaitable, call):
        async def finish():
            try:
                value = await awaitable
                result = self.outcome(tool, lambda: tool.result(value))
            except asyncio.CancelledError:
                return
            except BaseException as e:
                result = self.raised(tool, e)
            self.calls.pop(key(id), None)
            if not call.cancelled:
                self.answer(id, result)

        self.loop.create_task(finish())

    async def call_async(self, id, tool, kwargs):
        try:
            value = await tool.fn(**kwargs)
            if inspect.isawaitable(value):
                value = await value
            result = self.outcome(tool, lambda: tool.result(value))
        except asyncio.CancelledError:
            return  # the client gave up: no answer is sent
        except BaseException as e:
            result = self.raised(tool, e)
        self.answer(id, result)

    @staticmethod
    def outcome(tool, make):
        try:
            return make()
        except ArgumentError as e:
            return {"content": [text(str(e))], "isError": True}

    @staticmethod
    def raised(tool, error):
        # Anything a tool raises is its call's error, KeyboardInterrupt and SystemExit too:
        # re-raised on a pool thread it would only leave the call unanswered.
        if isinstance(error, ArgumentError):
            return {"content": [text(str(error))], "isError": True}
        try:
            print(f"mcpgw plugin host: tool `{tool.name}` raised:", file=sys.stderr)
            traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
            sys.stderr.flush()
        except Exception:
            pass
        return {"content": [text(said(error))], "isError": True}


class SyncCall:
    """A sync call on its thread: a cancelled one is not answered."""

    def __init__(self):
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


def leading_id(line):
    match = LEADING_ID.match(line[:1024])
    if match is None:
        return None
    try:
        return json.loads(match.group(1))
    except ValueError:
        return None


def key(id):
    return json.dumps(id, sort_keys=True)


async def serve(protocol_in, protocol_out):
    host = Host(protocol_out)
    REGISTRY.on_change = host.list_changed
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await host.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), protocol_in)
    await host.serve(reader)


def main():
    if sys.version_info < (3, 9):
        version = ".".join(map(str, sys.version_info[:3]))
        log(f"needs Python 3.9 or newer; {sys.executable} is {version} (set `python:` in the plugin's entry)")
        sys.exit(1)
    # The protocol gets private copies of stdin and stdout; fd 0 becomes /dev/null and fd 1
    # stderr, so that nothing a plugin (or a C extension, or a child it starts) reads or
    # prints can take or corrupt a message.
    protocol_in = os.fdopen(os.dup(0), "rb", buffering=0)
    # Buffered: its write() retries a short write (a signal a plugin handles mid-write).
    protocol_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr

    spec = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    paths = [p for p in spec.get("paths", []) if isinstance(p, str)]
    sys.path[:] = paths + [p for p in sys.path if p not in ("", ".") and p not in paths]
    install_api()
    load_modules([m for m in spec.get("modules", []) if isinstance(m, str)])
    if spec.get("check"):
        tools = [{"name": t.name, "module": t.module} for _, t in sorted(REGISTRY.tools.items())]
        report = {"tools": tools, "problems": REGISTRY.problems}
        protocol_out.write(json.dumps(report).encode() + b"\n")
        return
    try:
        asyncio.run(serve(protocol_in, protocol_out))
    except KeyboardInterrupt:
        pass


main()
