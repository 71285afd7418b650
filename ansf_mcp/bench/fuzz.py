"""Calls generated from the tools' own input schemas (hypothesis, the test extra).

Each tool gets valid inputs from its schema (with real swarm, agent and task ids mixed in, so calls reach the
board), inputs that break the schema, and hostile strings (long paths, surrogates, NUL, huge integers). Checked
for every call: an answer (no exception through the client), no unexpected exception logged by the server, and
an error result writes nothing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ansf_mcp.store.base import Store

SKIP = frozenset({"benchmark"})  # minutes per call; measured by its own suite
# Valid draws of a waiting parameter wait at most this long: a valid `wait_s` of 40 s only waits (the waits
# themselves are tested where they are built), and it made the waiting tools 85 % of a run's time.
WAIT_CAP_S = 0.05
TABLES = ("swarms", "agents", "tasks", "outcomes", "messages")

HOSTILE_TEXT = st.sampled_from([
    "a" * 4096, "../" * 1400, "/etc/passwd", "\x00", "\ud800", "é" * 3000, "~/x", "C:\\x", "src/" + "x" * 300,
    " ", "", "swarm-000000000000", "a" * 100_001,
])
NUMBERS = [2**63, -(2**63) - 1, 2**64, 10**30, -1, 0, 1e308, -1e308, 0.5]
HOSTILE_NUMBER = st.sampled_from(NUMBERS)
HOSTILE_VALUES: list[Any] = [
    "a" * 4096, "../" * 1400, "/etc/passwd", "\x00", "\ud800", "é" * 3000, "~/x", "src/" + "x" * 300, "",
    "a" * 100_001, *NUMBERS, None, True, [], ["x" * 100_000] * 3, {"a": 1}, [[[[[]]]]],
]


class _Unexpected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.records.append(f"{record.name}: {record.getMessage()[:300]}")


def _fingerprint(store: Store) -> tuple:
    """Every row of the board's tables, read through the store (either engine), in a fixed order."""
    with store.reading() as conn:
        return tuple(tuple(sorted((tuple(r) for r in conn.execute(f"SELECT * FROM {t}")), key=repr))
                     for t in TABLES)


def from_schema(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """A strategy for the JSON Schema subset pydantic writes for tool inputs: objects with properties and
    required keys, strings (lengths, pattern), integers and numbers (bounds), booleans, null, arrays, anyOf,
    enum, const and $ref into $defs. (hypothesis-jsonschema relies on hypothesis internals that have moved.)"""
    defs = {**(defs or {}), **schema.get("$defs", {})}
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of(*(from_schema(s, defs) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "string":
        lo, hi = schema.get("minLength", 0), min(schema.get("maxLength", 300), 300)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda v: lo <= len(v))
        return st.text(min_size=lo, max_size=max(lo, hi))
    if kind == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -(2**40) - 1) + 1)
        hi = schema.get("maximum", schema.get("exclusiveMaximum", 2**40 + 1) - 1)
        return st.integers(lo, hi)
    if kind == "number":
        return st.floats(schema.get("minimum", schema.get("exclusiveMinimum")),
                         schema.get("maximum", schema.get("exclusiveMaximum")),
                         exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
                         allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs) if schema.get("items") else st.text(max_size=20)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 8), 8))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, defs) for k, v in props.items() if k in required},
            optional={k: from_schema(v, defs) for k, v in props.items() if k not in required},
        )
    return st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))


def _leaves(schema: dict[str, Any]) -> list[str]:
    return list((schema.get("properties") or {}).keys())


def fuzz_tools(tmp: Path, *, examples_per_tool: int = 40, seed: int = 0,
               tools: list[str] | None = None, store: str | None = None) -> dict[str, Any]:
    """Fuzz every tool (but the benchmark) of a fresh in-process server over the SDK client, on the SQLite
    file in `tmp` or on the PostgreSQL database `store` names (an empty one)."""
    from mcp import Client

    from ansf_mcp.server.app import build_server
    from ansf_mcp.settings import Settings
    from ansf_mcp.tools.answers import MAX_ANSWER_CHARS  # the server's cap, checked on every answer

    project = tmp / "project"
    (project / "pkg").mkdir(parents=True, exist_ok=True)
    (project / "pkg" / "mod.py").write_text("import json\n\n\nclass A:\n    def f(self):\n        return json.dumps(1)\n")
    server, runtime = build_server(Settings(data_dir=tmp / "data", project_root=project, store=store))
    catcher = _Unexpected()
    logging.getLogger().addHandler(catcher)
    report: dict[str, Any] = {"engine": runtime.store.engine, "calls": 0, "errors": 0, "crashes": [], "partial_writes": [], "tracebacks": [],
                              "answer_cap_chars": MAX_ANSWER_CHARS, "largest_answer_chars": 0,
                              "largest_answer_tool": None, "over_cap": [],
                              "per_tool": {}}
    started = time.monotonic()
    try:
        with anyio.from_thread.start_blocking_portal() as portal:
            with portal.wrap_async_context_manager(Client(server)) as client:
                listed = portal.call(client.list_tools).tools
                call = lambda name, args: portal.call(client.call_tool, name, args)  # noqa: E731
                spawn = call("spawn_swarm", {"name": "fuzz", "agents": [{"role": "r", "id": "a"}, {"role": "q"}]})
                swarm = spawn.structured_content["swarm_id"]
                call("coordinate", {"swarm_id": swarm, "tasks": [{"id": "t1", "description": "x"},
                                                                 {"id": "t2", "description": "y"}]})
                real = {"swarm_id": swarm, "agent_id": "a", "from_agent": "a", "to_agent": "agent-1",
                        "task_id": "t1", "relative_path": "pkg/mod.py", "name_path": "A/f"}
                for tool in listed:
                    if tool.name in SKIP or (tools and tool.name not in tools):
                        continue
                    _fuzz_one(tool.name, tool.input_schema, real, call, runtime, catcher, report,
                              examples_per_tool, seed)
    finally:
        logging.getLogger().removeHandler(catcher)
        runtime.shutdown()
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def _fuzz_one(name: str, schema: dict[str, Any], real: dict[str, Any], call, runtime, catcher: _Unexpected,
              report: dict[str, Any], examples: int, seed: int) -> None:
    keys = _leaves(schema)
    valid = from_schema(schema).map(_short_waits)
    with_real = valid.map(lambda args: {**args, **{k: v for k, v in real.items() if k in keys}})
    broken = st.dictionaries(
        st.sampled_from(keys) if keys else st.just("x"),
        st.one_of(HOSTILE_TEXT, HOSTILE_NUMBER, st.none(), st.booleans(), st.lists(HOSTILE_TEXT, max_size=3),
                  st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)),
        max_size=len(keys) + 1,
    ).map(lambda args: {**{k: v for k, v in real.items() if k in keys}, **args})
    counts: dict[str, float] = {"calls": 0, "errors": 0}
    store = runtime.store
    began = time.monotonic()

    def probe(args: dict[str, Any]) -> None:
        before = _fingerprint(store)
        seen = len(catcher.records)
        try:
            result = call(name, args)
        except Exception as exc:
            report["crashes"].append(f"{name}({_short(args)}): {exc!r}"[:400])
            return
        counts["calls"] += 1
        # What was sent as the answer: text and structured content, JSON-encoded (the cap's own measure).
        size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        if size > report["largest_answer_chars"]:
            report["largest_answer_chars"], report["largest_answer_tool"] = size, name
        if size > report["answer_cap_chars"]:
            report["over_cap"].append(f"{name}({_short(args)}): {size} characters")
        if result.is_error:
            counts["errors"] += 1
            if _fingerprint(store) != before:
                report["partial_writes"].append(f"{name}({_short(args)})")
        if len(catcher.records) > seen:
            report["tracebacks"].append(f"{name}({_short(args)}): {catcher.records[-1]}")

    # Every hostile value in every parameter, the others real: the cases random draws reach too rarely.
    base = {k: v for k, v in real.items() if k in keys}
    for key in keys:
        for value in HOSTILE_VALUES:
            probe({**base, key: value})

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(args=st.one_of(valid, with_real, broken))
    def check(args: dict[str, Any]) -> None:
        probe(args)

    check()
    report["calls"] += counts["calls"]
    report["errors"] += counts["errors"]
    counts["seconds"] = round(time.monotonic() - began, 2)
    report["per_tool"][name] = counts


def _short_waits(args: Any) -> Any:
    if isinstance(args, dict) and isinstance(args.get("wait_s"), int | float) and args["wait_s"] > WAIT_CAP_S:
        return {**args, "wait_s": WAIT_CAP_S}
    return args


def _short(args: dict[str, Any]) -> str:
    return repr({k: (v[:40] + "…" if isinstance(v, str) and len(v) > 40 else v) for k, v in args.items()})[:300]
