"""Resources for boards and tasks, the agent-loop and planning prompts, and the tool-family subset, through a
real client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings
from tests.mcp_calls import call

pytestmark = pytest.mark.anyio

BOARD_TOOLS = {"spawn_swarm", "swarm_status", "coordinate", "next_task", "report_outcome"}


async def test_boards_and_tasks_read_as_resources(client: Client):
    sw = (await call(client, "spawn_swarm", name="r", agents=[{"role": "backend"}, {"role": "qa"}]))["swarm_id"]
    await call(client, "coordinate", swarm_id=sw, strategy="round-robin",
               tasks=[{"id": "api", "description": "write the endpoint"},
                          {"id": "check", "description": "test it", "depends_on": ["api"]}])
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert templates == {"ansf://swarms/{swarm_id}", "ansf://swarms/{swarm_id}/tasks/{task_id}"}
    assert [r.uri for r in (await client.list_resources()).resources] == ["ui://ansf/board.html", "ansf://swarms"]

    swarms = json.loads((await client.read_resource("ansf://swarms")).contents[0].text)
    assert [s["swarm_id"] for s in swarms] == [sw]
    board = json.loads((await client.read_resource(f"ansf://swarms/{sw}")).contents[0].text)
    assert [t["description"] for t in board["tasks"]] == ["write the endpoint", "test it"]
    second = board["tasks"][1]["id"]
    task = json.loads((await client.read_resource(f"ansf://swarms/{sw}/tasks/{second}")).contents[0].text)
    assert second == "check" and task["id"] == "check" and task["depends_on"] == ["api"]


async def test_a_resource_that_is_not_there_is_one_sentence(client: Client):
    sw = (await call(client, "spawn_swarm", name="r", agents=[{"role": "qa"}]))["swarm_id"]
    with pytest.raises(Exception, match="has no task task-99"):
        await client.read_resource(f"ansf://swarms/{sw}/tasks/task-99")
    with pytest.raises(Exception, match="swarm-000000000000"):
        await client.read_resource("ansf://swarms/swarm-000000000000")


async def test_a_board_larger_than_a_page_reads_whole(client: Client):
    from ansf_mcp.tools import resources

    sw = (await call(client, "spawn_swarm", name="big", agents=[{"role": "qa"}]))["swarm_id"]
    n = 7
    old = resources.PAGE
    resources.PAGE = 3  # pages of 3: the resource must follow the cursor to the end
    try:
        await call(client, "coordinate", swarm_id=sw, strategy="round-robin",
                   tasks=[{"description": f"t{i}"} for i in range(n)])
        board = json.loads((await client.read_resource(f"ansf://swarms/{sw}")).contents[0].text)
        last = board["tasks"][-1]["id"]
        task = json.loads((await client.read_resource(f"ansf://swarms/{sw}/tasks/{last}")).contents[0].text)
    finally:
        resources.PAGE = old
    assert [t["description"] for t in board["tasks"]] == [f"t{i}" for i in range(n)]
    assert task["description"] == f"t{n - 1}" and board["next_cursor"] is None


async def test_prompts_for_the_agent_loop_and_for_planning(client: Client):
    names = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(names) == {"agent_loop", "plan_work"}
    assert {a.name for a in names["agent_loop"].arguments} == {"swarm_id", "agent_id"}
    loop = await client.get_prompt("agent_loop", {"swarm_id": "swarm-0123456789ab", "agent_id": "agent-2"})
    text = loop.messages[0].content.text
    assert "next_task(swarm_id='swarm-0123456789ab', agent_id='agent-2'" in text and "report_outcome" in text
    # what the one-line tool descriptions leave to the prompts: statuses, claims, manage_task's actions, paging
    assert all(word in text for word in ("wait (", "done (", "blocked (", "blocked_by", "`claim`", "refused"))
    plan = (await client.get_prompt("plan_work", {"goal": "ship billing"})).messages[0].content.text
    assert "ship billing" in plan and "spawn_swarm" in plan
    assert all(word in plan for word in ("next_cursor", "retry", "cancel", "depends_on first", "reassign_task"))
    # arguments are checked as the tools check them: a quote or a line break would rewrite the instructions
    from mcp.shared.exceptions import MCPError

    for bad, which in (({"swarm_id": "swarm-0123456789ab", "agent_id": "a'); stop()\n"}, "agent_id"),
                       ({"swarm_id": "nope", "agent_id": "agent-2"}, "swarm_id 'nope'")):
        with pytest.raises(MCPError, match=which):
            await client.get_prompt("agent_loop", bad)
    with pytest.raises(MCPError, match="goal needs 1 to"):
        await client.get_prompt("plan_work", {"goal": " "})


async def listed(settings: Settings, families: tuple[str, ...]) -> list:
    server, runtime = build_server(settings, tools=families)
    try:
        async with Client(server) as c:
            return (await c.list_tools()).tools
    finally:
        runtime.shutdown()


def model_visible_chars(tools: list) -> int:
    """What a client puts before its model for each tool: name, description and input schema (output schemas
    serve the client's validation of structured answers, not the model)."""
    return sum(len(json.dumps({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
               for t in tools)


async def test_the_board_family_lists_only_board_tools(settings: Settings):
    names = {t.name for t in await listed(settings, ("board",))}
    assert BOARD_TOOLS | {"spawn_preset", "dissolve_swarm"} <= names
    assert not names & {"system_status", "find_symbol", "benchmark"}


async def test_a_worker_agent_subset_costs_under_2k_tokens(settings: Settings):
    from ansf_mcp.server.families import AGENT_TOOLS

    tools = await listed(settings, ("agent",))
    assert {t.name for t in tools} == AGENT_TOOLS
    assert model_visible_chars(tools) / 4 <= 2000  # tokens estimated as characters / 4


def listing_over_stdio(tmp_path: Path, families: str) -> str:
    """The raw JSON-RPC answer to tools/list, as `ansf serve --tools <families>` writes it on stdout after a
    client's initialize handshake (legacy mode, as Claude Desktop and IDEs connect)."""
    import subprocess

    from tests.conftest import ansf_command, subprocess_env

    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    proc = subprocess.Popen([*ansf_command(), "serve", "--tools", families], env=subprocess_env(tmp_path / "d"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=tmp_path)
    answers: dict[int, str] = {}
    try:
        # stdin stays open until the answer is read: a server may drop what is pending when its input ends
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        proc.stdin.flush()
        while 2 not in answers and (line := proc.stdout.readline()):
            answers[json.loads(line).get("id")] = line.rstrip("\n")
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert 2 in answers, answers
    return answers[2]


@pytest.mark.parametrize(("families", "tokens"), [("agent", 1000), ("board", 2000)])
def test_the_whole_tools_list_answer_of_a_board_subset_is_small(tmp_path: Path, families: str, tokens: int):
    """Tokens as characters / 4 of everything the client receives: names, titles, descriptions, input schemas,
    annotations (issue 18: a board-only subset within 2 k). The agent subset was 3.96 k and the board family 8.4 k
    with full output schemas, 1.94 k and 3.97 k with outlines of them; README's `--tools` paragraph has the rest."""
    answer = listing_over_stdio(tmp_path, families)
    listed = json.loads(answer)["result"]["tools"]
    assert all("outputSchema" not in t and t["inputSchema"]["type"] == "object" for t in listed)
    assert len(answer) / 4 <= tokens, len(answer) / 4


async def test_every_family_by_default(client: Client):
    names = {t.name for t in (await client.list_tools()).tools}
    assert BOARD_TOOLS | {"system_status", "benchmark"} <= names


def test_an_unknown_tool_family_is_one_sentence(tmp_path: Path):
    import subprocess

    from tests.conftest import ansf_command, subprocess_env

    out = subprocess.run([*ansf_command(), "serve", "--tools", "board,nope"], env=subprocess_env(tmp_path / "d"),
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "choose families from board, agent, system, semantic, bench, not 'board,nope'" in out.stderr


# Legacy clients (initialize handshake: Claude Desktop, IDEs, the stdio relay) subscribe with resources/subscribe.
@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_subscribers_hear_of_changes_to_their_swarm_and_only_theirs(settings: Settings):
    import anyio

    server, runtime = build_server(settings)
    heard: list[str] = []
    woken = anyio.Event()

    async def on_message(message) -> None:
        params = getattr(message, "params", None)
        if getattr(message, "method", None) == "notifications/resources/updated" and params is not None:
            heard.append(str(params.uri))
            woken.set()

    try:
        async with Client(server, message_handler=on_message, mode="legacy") as watcher, \
                Client(server, mode="legacy") as lead:
            mine = (await call(lead, "spawn_swarm", name="mine", agents=[{"role": "qa"}]))["swarm_id"]
            other = (await call(lead, "spawn_swarm", name="other", agents=[{"role": "qa"}]))["swarm_id"]
            await watcher.subscribe_resource(f"ansf://swarms/{mine}")
            await watcher.subscribe_resource(f"ansf://swarms/{mine}/tasks/t1")
            await call(lead, "swarm_status", swarm_id=mine)  # a read changes nothing
            await call(lead, "coordinate", swarm_id=other, strategy="round-robin", tasks=[{"description": "x"}])
            assert heard == []
            await call(lead, "coordinate", swarm_id=mine, strategy="round-robin",
                       tasks=[{"id": "t1", "description": "y"}])
            with anyio.fail_after(10):
                while len(heard) < 2:
                    woken = anyio.Event()
                    await woken.wait()
            assert sorted(heard) == [f"ansf://swarms/{mine}", f"ansf://swarms/{mine}/tasks/t1"]
            await watcher.unsubscribe_resource(f"ansf://swarms/{mine}")
            await watcher.unsubscribe_resource(f"ansf://swarms/{mine}/tasks/t1")
            await call(lead, "next_task", swarm_id=mine, agent_id="agent-0")
            await call(lead, "swarm_status")  # a round trip after the claim: any notice would be here by now
            assert len(heard) == 2
            # a URI no resource answers is refused, not held as a subscription that is never told anything
            from mcp.shared.exceptions import MCPError

            with pytest.raises(MCPError, match="unknown resource 'ansf://nothing/here'"):
                await watcher.subscribe_resource("ansf://nothing/here")
            long_id = "x" * 5000
            with pytest.raises(Exception) as unknown:
                await watcher.read_resource(f"ansf://swarms/{long_id}")
            assert len(str(unknown.value)) < 1000  # the id is cut in the error, not echoed whole
    finally:
        runtime.shutdown()


async def test_a_listening_client_hears_of_changes_to_the_board_it_watches(settings: Settings):
    import anyio

    server, runtime = build_server(settings)
    try:
        async with Client(server) as watcher, Client(server) as lead:  # the 2026-07-28 protocol
            sw = (await call(lead, "spawn_swarm", name="w", agents=[{"role": "qa"}]))["swarm_id"]
            other = (await call(lead, "spawn_swarm", name="o", agents=[{"role": "qa"}]))["swarm_id"]
            board = f"ansf://swarms/{sw}"
            async with watcher.listen(resource_subscriptions=[board]) as events:
                await call(lead, "coordinate", swarm_id=other, strategy="round-robin", tasks=[{"description": "x"}])
                await call(lead, "coordinate", swarm_id=sw, strategy="round-robin", tasks=[{"description": "y"}])
                with anyio.fail_after(10):
                    event = await events.__anext__()
            assert event.uri == board  # the other swarm's change was not delivered first
    finally:
        runtime.shutdown()


async def _board_app_through(client: Client, *, legacy: bool = False) -> None:
    """The board as an MCP App: the ui:// view is listed and read as the SDK's app MIME type, swarm_status names it
    in `_meta.ui.resourceUri`, the extension is advertised (the legacy handshake has no extensions field, so there
    only the tool's `_meta` names the view), and the tool's text answer is still there."""
    from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

    listed = {r.uri: r for r in (await client.list_resources()).resources}
    assert listed["ui://ansf/board.html"].mime_type == APP_MIME_TYPE
    [content] = (await client.read_resource("ui://ansf/board.html")).contents
    assert content.mime_type == APP_MIME_TYPE and "ui/notifications/tool-result" in content.text
    assert "s.swarm_id" in content.text and "a.active_claims" in content.text  # the fields the answer has
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert tools["swarm_status"].meta == {"ui": {"resourceUri": "ui://ansf/board.html"}}
    assert tools["next_task"].meta is None  # only the board view's tool names it
    extensions = client.server_capabilities.extensions
    assert extensions is None if legacy else EXTENSION_ID in extensions
    sw = (await call(client, "spawn_swarm", name="app", agents=[{"role": "qa"}]))["swarm_id"]
    result = await client.call_tool("swarm_status", {"swarm_id": sw})
    assert not result.is_error and sw in result.content[0].text  # clients without Apps keep the text answer
    assert result.structured_content["swarm"]["swarm_id"] == sw  # what the view draws


async def test_the_board_is_an_mcp_app(client: Client):
    await _board_app_through(client)


@pytest.mark.slow
async def test_the_board_is_an_mcp_app_over_http(http_server):
    base, _ = http_server("http")
    async with Client(f"{base}/mcp") as client:
        await _board_app_through(client)


@pytest.mark.slow
async def test_the_board_is_an_mcp_app_over_stdio_in_legacy_mode(data_dir: Path, tmp_path: Path):
    from tests.test_transports import stdio_params

    async with Client(stdio_params(data_dir, tmp_path), mode="legacy") as client:
        await _board_app_through(client, legacy=True)


async def test_a_server_without_board_tools_has_no_board_view(settings: Settings):
    server, runtime = build_server(settings, tools=("system",))
    try:
        async with Client(server) as c:
            assert [r.uri for r in (await c.list_resources()).resources] == []
            assert "io.modelcontextprotocol/ui" not in (c.server_capabilities.extensions or {})
    finally:
        runtime.shutdown()
