"""The tool surface an LLM fills in: titles, a description on every parameter, one-sentence errors, one way
to register a tool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio

TOOLS_DIR = Path(__file__).resolve().parents[1] / "tools"


def parameters(schema: dict, where: str = "") -> list[tuple[str, dict]]:
    """Every parameter of an input schema, nested object fields included (inline or in $defs)."""
    defs = schema.get("$defs", {})
    found: list[tuple[str, dict]] = []
    seen: set[str] = set()

    def walk(obj: dict, path: str) -> None:
        for name, spec in (obj.get("properties") or {}).items():
            found.append((f"{path}{name}", spec))
            nested(spec, f"{path}{name}.")

    def nested(spec: dict, path: str) -> None:
        ref = spec.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            seen.add(ref)
            walk(defs[ref.rsplit("/", 1)[-1]], path)
        if "properties" in spec:
            walk(spec, path)
        for key in ("items", "additionalProperties"):
            if isinstance(spec.get(key), dict):
                nested(spec[key], path)
        for key in ("anyOf", "oneOf", "allOf"):
            for alt in spec.get(key) or []:
                nested(alt, path)

    walk(schema, where)
    return found


async def test_every_tool_has_a_title_and_every_parameter_a_description(client: Client) -> None:
    """Every parameter is described, but for ids and cursors copied from earlier answers (named in HINTS): their
    names say what they are, and a refused one is answered with where to find a good one."""
    from ansf_mcp.tools.registry import HINTS

    tools = (await client.list_tools()).tools
    assert len(tools) >= 15
    missing = []
    for tool in tools:
        assert tool.title and tool.title[0].isupper(), f"{tool.name} has no title"
        assert tool.description and "\n" not in tool.description, f"{tool.name}'s description is not one line"
        for name, spec in parameters(tool.input_schema, f"{tool.name}."):
            if not spec.get("description") and name.rsplit(".", 1)[-1] not in HINTS:
                missing.append(name)
    assert missing == [], f"parameters without a description: {missing}"


@pytest.mark.parametrize(
    ("tool", "args", "fragments"),
    [
        # a swarm's name where its id is expected: the form, an example and where to get one
        ("swarm_status", {"swarm_id": "team"}, ["swarm_id 'team'", "e.g. 'swarm-", "use swarm_status() to list"]),
        ("next_task", {"swarm_id": "swarm-000000000000", "agent_id": "a b"}, ["agent_id", "swarm_status(swarm_id)"]),
        ("spawn_swarm", {"name": "x"}, ["agents is required"]),
        ("spawn_swarm", {"name": "x", "agents": [{"role": "a"}], "topology": "blob"}, ["'mesh'", "not 'blob'"]),
        ("read_messages", {"swarm_id": "swarm-000000000000", "agent_id": "a", "since": -1}, ["since must be at"]),
        ("coordinate", {"swarm_id": "swarm-000000000000", "tasks": [{"description": ""}]},
         ["tasks[0].description must not be empty"]),
        ("swarm_status", {"swarm_id": 42}, ["must be a string, not 42"]),
        # a new id's form, said in the error since patterns are not listed
        ("spawn_swarm", {"name": "x", "agents": [{"role": "a", "id": "a b"}]},
         ["agents[0].id 'a b' is not in the expected form", "letters, digits and -_.:", "e.g. 'api'"]),
        ("swarm_status", {"swarm_id": "swarm-000000000000", "agent": "a b"}, ["agent 'a b'", "e.g. 'agent-0'"]),
        # guards checked though not listed: a claim's range, a lease's week, a message's length
        ("renew_lease", {"swarm_id": "swarm-000000000000", "task_id": "t", "agent_id": "a", "claim": 0},
         ["claim must be at least 1, not 0", "the claim number next_task gave"]),
        ("next_task", {"swarm_id": "swarm-000000000000", "agent_id": "a", "lease_seconds": 10**7},
         ["lease_seconds must be at most 604800"]),
        ("send_message", {"swarm_id": "swarm-000000000000", "from_agent": "a", "body": "x" * 40_000},
         ["body needs at most 32000 characters"]),
    ],
)
async def test_validation_errors_are_one_sentence(client: Client, tool: str, args: dict, fragments: list) -> None:
    result = await client.call_tool(tool, args)
    assert result.is_error
    text = result.content[0].text
    assert "\n" not in text and text.replace("e.g.", "eg").count(". ") == 0 and text.endswith("."), text
    for noise in ("validation error", "pydantic", "input_value", "[type=", "^swarm-", "Error executing"):
        assert noise not in text, text
    for fragment in fragments:
        assert fragment in text, text


async def test_core_errors_come_through_without_noise(client: Client) -> None:
    result = await client.call_tool("next_task", {"swarm_id": "swarm-000000000000", "agent_id": "a"})
    assert result.is_error and result.content[0].text == (
        "unknown swarm 'swarm-000000000000'; swarm_status() lists the swarms")


def test_one_way_to_register_a_tool_and_one_shrinker() -> None:
    """Tool families register through Toolbox.add and shrink through answers.Shrinking only."""
    offenders = []
    for path in [*TOOLS_DIR.glob("*.py"), *(TOOLS_DIR.parent / "semantic").glob("*.py")]:
        if path.name in ("registry.py", "answers.py"):
            continue
        text = path.read_text()
        for pattern in (r"\.add_tool\(", r"@\w+\.tool\(", r"ToolAnnotations\(", r"MAX_ANSWER_CHARS\s*=",
                        r"def _?shrink"):
            if re.search(pattern, text):
                offenders.append(f"{path.name}: {pattern}")
    assert offenders == []


def test_a_listed_input_schema_leaves_out_what_says_nothing() -> None:
    from ansf_mcp.tools.registry import lean_schema

    schema = {"title": "Args", "type": "object", "required": ["pattern"], "properties": {
        "pattern": {"title": "Pattern", "type": "string", "minLength": 1, "description": "a regex"},
        "id": {"anyOf": [{"type": "string", "pattern": "^x$"}, {"type": "null"}], "default": None},
        "reason": {"type": "string", "default": ""},
        "preset": {"const": "six", "default": "six", "type": "string"},
        "limit": {"type": "integer", "default": 10, "maximum": 500},
        "title": {"title": "Title", "type": "string", "description": "a parameter named like a keyword"},
        "default": {"type": "boolean", "default": False},
    }}
    assert lean_schema(schema) == {"type": "object", "required": ["pattern"], "properties": {
        "pattern": {"type": "string", "description": "a regex"},  # a property named like a guard stays
        "id": {"type": "string"},
        "reason": {"type": "string"},
        "preset": {"const": "six", "type": "string"},
        "limit": {"type": "integer", "default": 10, "maximum": 500},  # a bound that says what to send stays
        "title": {"type": "string", "description": "a parameter named like a keyword"},  # its name stays listed
        "default": {"type": "boolean", "default": False},
    }}


def guards_in(schema: object, guards: frozenset[str]) -> list[str]:
    """The schema keywords among `guards` anywhere in `schema` (a property merely named like one is not one)."""
    if isinstance(schema, list):
        return [g for item in schema for g in guards_in(item, guards)]
    if not isinstance(schema, dict):
        return []
    found = [k for k, v in schema.items() if k in guards and not isinstance(v, dict)]
    for key, value in schema.items():
        nested = value.values() if key == "properties" and isinstance(value, dict) else [value]
        found += [g for item in nested for g in guards_in(item, guards)]
    return found


async def test_listed_schemas_are_lean_and_answers_still_structured(settings) -> None:
    """Listed input schemas carry no titles, no $ref to non-recursive definitions, no patterns and no size guards;
    no output schema is listed, and every answer still comes as structured content beside its text: the answer
    model whole, as the server's own (unlisted) output schema says."""
    import json

    from ansf_mcp.tools.registry import INPUT_GUARDS, ToolServer
    from jsonschema.validators import validator_for

    from ansf_mcp.server.app import build_server

    server, runtime = build_server(settings)
    try:
        unlisted = {t.name: t for t in await super(ToolServer, server).list_tools()}  # the SDK's own, checked
        full = {name: t.output_schema for name, t in unlisted.items()}
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            sw = (await client.call_tool("spawn_swarm", {"name": "x", "agents": [{"role": "a"}]})).structured_content
            status = await client.call_tool("swarm_status", {"swarm_id": sw["swarm_id"]})
            claim = await client.call_tool("next_task", {"swarm_id": sw["swarm_id"], "agent_id": "agent-0"})
    finally:
        runtime.shutdown()
    for tool in tools.values():
        assert tool.output_schema is None and full[tool.name], tool.name
        text = json.dumps(tool.input_schema)
        assert '"title"' not in text.replace('"title": {', ""), tool.name
        assert "$ref" not in text or tool.name in {"symbols_overview", "find_symbol"}, tool.name
        assert not guards_in(tool.input_schema, INPUT_GUARDS), tool.name
    assert {"pattern", "maxLength"} <= set(guards_in(unlisted["send_message"].input_schema, INPUT_GUARDS))
    for name, result in (("swarm_status", status), ("next_task", claim)):
        assert not result.is_error and result.content[0].text and isinstance(result.structured_content, dict)
        assert list(validator_for(full[name])(full[name]).iter_errors(result.structured_content)) == [], name
    assert status.structured_content["swarm"]["swarm_id"] == sw["swarm_id"]
    assert claim.structured_content["status"] == "done"  # a swarm without tasks: nothing is left


@pytest.mark.parametrize("root", ["/", "~"])
async def test_semantic_tools_refuse_the_root_or_home_folder_as_project(tmp_path, root: str) -> None:
    from pathlib import Path

    from ansf_mcp.server.app import build_server
    from ansf_mcp.settings import Settings

    settings = Settings.load(data_dir=tmp_path / "data", project_root=Path(root).expanduser(), warm_model=False)
    server, runtime = build_server(settings)
    async with Client(server) as client:
        for tool, args in (("find_symbol", {"name_path": "main"}), ("symbols_overview", {"relative_path": "."})):
            result = await client.call_tool(tool, args)
            assert result.is_error and "--project" in result.content[0].text, result.content
        status = (await client.call_tool("system_status", {})).structured_content
        assert status["components"]["semantic"]["started"] is False  # refused before any language server
    runtime.shutdown()


def test_any_answer_over_the_cap_is_cut_to_fit_and_says_so() -> None:
    from ansf_mcp.tools.answers import bounded_error, shape
    from pydantic import BaseModel, Field

    class Item(BaseModel):
        name: str
        notes: list[str]

    class Answer(BaseModel):
        items: list[Item]
        shrunk: str | None = None

    big = Answer(items=[Item(name=f"i{k}-" + "n" * 5000, notes=["x" * 300] * 20) for k in range(50)])
    result = shape(big, None, 4000)
    assert not result.is_error
    assert len(result.model_dump_json(by_alias=True, exclude_none=True)) <= 4000 + 200  # + the envelope's names
    cut = Answer.model_validate(result.structured_content)  # still a valid answer
    assert cut.items[0].name.startswith("i0-") and len(cut.items) < 50
    assert cut.shrunk is not None and "items 50 →" in cut.shrunk and "long texts shortened" in cut.shrunk

    class Strict(BaseModel):
        ids: list[str] = Field(min_length=300)  # cutting the list would break the answer's own rule

    refused = shape(Strict(ids=[f"id-{k}" for k in range(400)]), None, 1000)
    assert refused.is_error and "answer cap" in refused.content[0].text

    text = bounded_error("no symbol " + "A/" + "x" * 100_000 + " in pkg/mod.py " + "y " * 2000)
    assert len(text) <= 1000 and "(100002 characters)" in text and text.startswith("no symbol A/xxx")
