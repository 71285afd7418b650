"""The MCP tool surface through a real in-process client: schemas, annotations, answers and errors."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from ansf_mcp.coordinator.neural import CHECKPOINT_DIR as CHECKPOINTS
from ansf_mcp.server.app import build_server
from tests.mcp_calls import call, error, hints, read_while_sent

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(settings, store_spec):
    """This module runs on both engines: the store is this test's SQLite file or a fresh PostgreSQL database."""
    return settings.model_copy(update={"store": str(store_spec)})

EXPECTED_TOOLS = {
    "spawn_swarm": (False, False),
    "swarm_status": (True, False),
    "coordinate": (False, False),
    "next_task": (False, False),
    "report_outcome": (False, False),
    "renew_lease": (False, False),
    "release_task": (False, False),
    "reassign_task": (False, False),
    "send_message": (False, False),
    "read_messages": (True, False),
    "dissolve_swarm": (False, True),
    "system_status": (True, False),
}


async def spawn(client: Client, *roles: str, topology: str = "mesh", capacity: int = 1) -> str:
    out = await call(
        client,
        "spawn_swarm",
        name="team",
        agents=[{"role": r, "capacity": capacity} for r in roles],
        topology=topology,
    )
    return out["swarm_id"]


async def test_tools_have_schemas_and_honest_annotations(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= set(EXPECTED_TOOLS)
    for name, (read_only, destructive) in EXPECTED_TOOLS.items():
        tool = tools[name]
        assert hints(tool).read_only is read_only, name
        if not read_only:  # the destructive hint means nothing for a tool that only reads
            assert hints(tool).destructive is destructive, name
        assert hints(tool).open_world is False, name
        # Answers are structured content without a listed output schema (test_tool_surface checks them).
        assert tool.input_schema["type"] == "object" and tool.output_schema is None, name
        assert len(tool.description) < 300, f"{name}'s description costs too much context"


async def test_round_trip_spawn_coordinate_claim_report(client: Client) -> None:
    sw = await spawn(client, "backend", "frontend")
    result = await call(
        client,
        "coordinate",
        swarm_id=sw,
        tasks=[
            {"id": "api", "description": "Add pagination to the orders API"},
            {"id": "ui", "description": "Show pages in the orders table", "depends_on": ["api"]},
        ],
        strategy="history",
    )
    assert result["strategy"] == "history"
    assert {a["task"] for a in result["assignments"]} == {"api", "ui"}
    owner = next(a["agent"] for a in result["assignments"] if a["task"] == "api")
    claim = await call(client, "next_task", swarm_id=sw, agent_id=owner, lease_seconds=30)
    assert claim["claimed"] and claim["task"]["id"] == "api"
    receipt = await call(
        client, "report_outcome", swarm_id=sw, task_id="api", agent_id=owner, success=True, summary="done"
    )
    assert receipt["state"] == "succeeded" and receipt["unblocked"] == ["ui"]
    status = (await call(client, "swarm_status", swarm_id=sw))["swarm"]
    assert {t["id"]: t["state"] for t in status["tasks"]} == {"api": "succeeded", "ui": "ready"}
    assert sum(a["successes"] for a in status["agents"]) == 1
    listing = await call(client, "swarm_status")
    assert [s["swarm_id"] for s in listing["swarms"]] == [sw]


async def test_auto_says_which_strategy_it_used(settings) -> None:
    """A new swarm has no outcomes: auto goes by its prior (checkpoints/auto_prior.json, measured on simulated
    held-out episodes), where neural has the lowest log-loss — when the phase allows the network."""
    roomy = settings.model_copy(update={"phase_enhanced_at": 0.999, "phase_critical_at": 1.0})  # phase 3 here
    server, runtime = build_server(roomy)
    async with Client(server) as client:
        sw = await spawn(client, "backend")
        result = await call(client, "coordinate", swarm_id=sw, tasks=[{"description": "anything"}])
    runtime.shutdown()
    assert result["strategy"] == "neural" and result["note"] is None, result
    prior = json.loads((CHECKPOINTS / "auto_prior.json").read_text())["estimators"]
    assert min(prior, key=lambda name: prior[name]["log_loss"]) == "neural"
    expected = f"neural predicts best: log-loss {prior['neural']['log_loss']:.3f} on simulated held-out episodes"
    assert result["reason"].startswith(expected), result["reason"]


async def test_coordinate_tool_runs_the_shipped_checkpoint(client: Client) -> None:
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE

    sw = await spawn(client, "backend", "frontend")
    result = await call(client, "coordinate", swarm_id=sw, strategy="neural",
                        tasks=[{"description": "Add an index to the orders table"}, {"description": "Fix the navbar"}])
    assert result["strategy"] == "neural" and result["model"] == DEFAULT_PROFILE and result["note"] is None
    assert all(0 < a["p_success"] < 1 for a in result["assignments"])
    status = await call(client, "system_status")
    assert DEFAULT_PROFILE in status["models"]["neural_profiles"] and status["models"]["torch_imported"]


async def test_nothing_ready_is_explicit(client: Client) -> None:
    sw = await spawn(client, "backend")
    claim = await call(client, "next_task", swarm_id=sw, agent_id="agent-0")
    assert claim["claimed"] is False and claim["reason"]


async def test_reported_failures_steer_later_assignments(client: Client) -> None:
    """An agent whose outcomes show it failing at a kind of task stops receiving that kind."""
    sw = await spawn(client, "generalist", "generalist")
    for round_ in range(3):
        for agent, (kind, ok) in {"agent-0": ("database migration", False), "agent-1": ("database migration", True)}.items():
            task_id = f"{agent}-{round_}"
            await call(
                client,
                "coordinate",
                swarm_id=sw,
                tasks=[{"id": task_id, "description": f"Write the {kind} for table {round_}"}],
                strategy="round-robin",
            )
            await call(client, "reassign_task", swarm_id=sw, task_id=task_id, to_agent=agent)
            claim = await call(client, "next_task", swarm_id=sw, agent_id=agent)
            assert claim["task"]["id"] == task_id
            await call(client, "report_outcome", swarm_id=sw, task_id=task_id, agent_id=agent, success=ok)
    result = await call(
        client,
        "coordinate",
        swarm_id=sw,
        tasks=[{"id": "next", "description": "Write the database migration for the invoices table"}],
        strategy="history",
    )
    assert result["assignments"][0]["agent"] == "agent-1"


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("spawn_swarm", {"name": "x", "agents": "nope"}, "agents"),
        ("spawn_swarm", {"name": "x", "agents": []}, "agents"),
        ("spawn_swarm", {"name": "x", "agents": [{"role": "a"}], "topology": "blob"}, "topology"),
        ("swarm_status", {"swarm_id": "swarm-000000000000"}, "unknown swarm"),
        ("swarm_status", {"swarm_id": 42}, "swarm_id"),
        ("next_task", {"swarm_id": "swarm-000000000000", "agent_id": "a"}, "unknown swarm"),
        ("dissolve_swarm", {"swarm_id": "../../etc"}, "swarm_id"),
    ],
)
async def test_bad_input_is_a_clear_error(client: Client, tool: str, args: dict, fragment: str) -> None:
    assert fragment in await error(client, tool, **args)


async def test_unknown_ids_and_oversized_input_write_nothing(client: Client) -> None:
    sw = await spawn(client, "backend")
    assert "unknown agent" in await error(client, "next_task", swarm_id=sw, agent_id="ghost")
    huge = "x" * (1024 * 1024)
    await error(client, "coordinate", swarm_id=sw, tasks=[{"description": huge}])
    many = [{"description": f"t{i}"} for i in range(10_000)]
    await error(client, "coordinate", swarm_id=sw, tasks=many)
    partly_bad = [{"id": "ok", "description": "fine"}, {"id": "bad", "description": "x", "depends_on": ["missing"]}]
    assert "unknown task 'missing'" in await error(client, "coordinate", swarm_id=sw, tasks=partly_bad)
    await error(client, "send_message", swarm_id=sw, from_agent="agent-0", body=huge)
    status = (await call(client, "swarm_status", swarm_id=sw))["swarm"]
    assert status["tasks"] == [] and sum(status["tasks_by_state"].values()) == 0


async def test_large_boards_shrink_and_say_so(client: Client) -> None:
    sw = await spawn(client, "backend")
    long_tasks = [{"description": f"task {i} " + "details " * 900} for i in range(40)]
    await call(client, "coordinate", swarm_id=sw, tasks=long_tasks, strategy="round-robin")
    compact = (await call(client, "swarm_status", swarm_id=sw, limit=30))["swarm"]
    assert compact["shrunk"] == "compact" and len(compact["tasks"]) == 30
    assert all(len(t["description"]) <= 161 for t in compact["tasks"])
    many = [{"description": f"item {i} " + "words " * 30} for i in range(900)]
    await call(client, "coordinate", swarm_id=sw, tasks=many, strategy="round-robin")
    page = (await call(client, "swarm_status", swarm_id=sw, limit=500))["swarm"]
    # 500 compact tasks do not fit: the page lists the first ones that do, and its cursor continues after them.
    listed = len(page["tasks"])
    assert page["shrunk"] == f"compact, first {listed}" and 0 < listed < 500
    assert page["tasks_omitted"] == 940 - listed and sum(page["tasks_by_state"].values()) == 940
    following = (await call(client, "swarm_status", swarm_id=sw, limit=1, cursor=page["next_cursor"]))["swarm"]
    assert following["tasks"][0]["id"] == f"task-{listed}"
    small = (await call(client, "swarm_status", swarm_id=sw, limit=3))["swarm"]
    # Three long tasks (7 207 characters each) fit the cap: the page is sent whole, nothing cut.
    assert small["shrunk"] is None and small["next_cursor"] is not None
    assert [t["description"] for t in small["tasks"]] == [t["description"] for t in long_tasks[:3]]


async def test_a_waiting_reader_wakes_when_a_message_arrives(client: Client) -> None:
    sw = await spawn(client, "a", "b")
    inbox, waited = await read_while_sent(client, client, sw, "news", send_after_s=0.5, wait_s=20)
    assert [m["body"] for m in inbox["messages"]] == ["news"]
    assert 0.4 < waited < 10  # woken by the message, long before wait_s
    empty = await call(client, "read_messages", swarm_id=sw, agent_id="agent-0", wait_s=0.3)
    assert empty["messages"] == []


async def test_messages_respect_topology_through_tools(client: Client) -> None:
    sw = await spawn(client, "hub", "a", "b", topology="star")
    refused = await error(client, "send_message", swarm_id=sw, from_agent="agent-1", to_agent="agent-2", body="hi")
    assert "through the hub" in refused
    await call(client, "send_message", swarm_id=sw, from_agent="agent-1", to_agent="agent-0", body="hi hub")
    inbox = await call(client, "read_messages", swarm_id=sw, agent_id="agent-0")
    assert [m["body"] for m in inbox["messages"]] == ["hi hub"]
    assert (await call(client, "read_messages", swarm_id=sw, agent_id="agent-0", since=inbox["next_since"]))[
        "messages"
    ] == []


async def test_a_lone_agent_is_told_it_is_the_only_one(client: Client) -> None:
    """QA finding 7: a one-agent mesh swarm's broadcast is refused for the real reason, not with the mesh rule
    ("anyone may message anyone"), which would read as a contradiction."""
    for topology in ("mesh", "ring"):
        sw = await spawn(client, "solo", topology=topology)
        text = await error(client, "send_message", swarm_id=sw, from_agent="agent-0", body="anyone?")
        assert "'agent-0' has nobody to message: it is the only agent in the swarm" in text, text
        assert "anyone may" not in text


async def test_dissolve_reports_removals(client: Client) -> None:
    sw = await spawn(client, "a", "b")
    await call(client, "coordinate", swarm_id=sw, tasks=[{"description": "x"}], strategy="tags")
    receipt = await call(client, "dissolve_swarm", swarm_id=sw)
    assert receipt["removed"]["agents"] == 2 and receipt["removed"]["tasks"] == 1
    again = await call(client, "dissolve_swarm", swarm_id=sw)  # a retry whose first answer was lost
    assert again["removed"] == receipt["removed"] and again["note"].startswith("a repeat")
    assert "unknown swarm" in await error(client, "swarm_status", swarm_id=sw)


async def test_system_status_measures(client: Client, settings) -> None:
    status = await call(client, "system_status")
    assert status["data_dir"] == str(settings.data_dir)
    assert status["process"]["rss_bytes"] > 10 * 1024 * 1024
    assert status["machine"]["memory_total_bytes"] > status["machine"]["memory_available_bytes"] > 0
    assert status["phase"]["phase"].endswith(("critical", "enhanced", "optimal")) and status["phase"]["reason"]
    assert status["components"]["semantic"]["started"] is False, "no semantic call yet, nothing should be started"
