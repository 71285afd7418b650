"""What an agent reads back from `coordinate` and `swarm_status` at the edges, through the SDK client: decisions
too large for one answer, and what the current operating phase lets `auto` use."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings
from tests.test_governor import AUTO_WITHOUT_NEURAL, GiB, cgroup_v2

pytestmark = pytest.mark.anyio


async def test_a_decision_too_large_for_one_answer_says_what_it_lists(client: Client) -> None:
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r", "capacity": 100}] * 2}))
    swarm_id = sw.structured_content["swarm_id"]
    tasks = [{"description": f"task {i} with a longer description of the work"} for i in range(1000)]
    answer = await client.call_tool("coordinate", {"swarm_id": swarm_id, "tasks": tasks, "strategy": "round-robin"})
    assert not answer.is_error, answer.content[0].text
    got = answer.structured_content
    listed_a, listed_u = len(got["assignments"]), len(got["unassigned"])
    assert 0 < listed_a < 200 and 0 < listed_u < 800
    assert f"the first {listed_a} of 200 assignments and {listed_u} of 800 unassigned" in got["shrunk"]
    assert got["reason"] is None or not got["reason"].endswith("…")
    # What is not listed is on the board all the same.
    status = (await client.call_tool("swarm_status", {"swarm_id": swarm_id, "limit": 0})).structured_content
    assert status["swarm"]["tasks_matching"] == 1000
    assert sum(a["assigned_open"] for a in status["swarm"]["agents"]) == 200


async def test_swarm_status_names_what_auto_uses_in_the_current_phase(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path / "cg", used=int(9.95 * GiB), limit=10 * GiB)
    server, _ = build_server(Settings(data_dir=tmp_path / "data", cgroup_root=root, warm_model=False))
    async with Client(server) as client:
        sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}] * 2})).structured_content
        status = (await client.call_tool("swarm_status", {"swarm_id": sw["swarm_id"]})).structured_content
        used = (await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"],
                                                      "tasks": [{"description": "x"}]})).structured_content
    assert used["strategy"] == AUTO_WITHOUT_NEURAL
    assert status["swarm"]["auto_uses"].startswith(f"{AUTO_WITHOUT_NEURAL} (")
    assert "current operating phase (1 critical) disables the network" in status["swarm"]["auto_uses"]


async def test_a_task_behind_a_cancelled_one_is_not_assigned(client: Client) -> None:
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}]})).structured_content
    swarm_id = sw["swarm_id"]
    await client.call_tool("coordinate", {"swarm_id": swarm_id, "strategy": "round-robin",
                                          "tasks": [{"id": "p", "description": "parent"}]})
    assert not (await client.call_tool("manage_task", {"swarm_id": swarm_id, "task_id": "p",
                                                       "action": "cancel"})).is_error
    got = (await client.call_tool("coordinate", {"swarm_id": swarm_id, "strategy": "round-robin",
                                                 "tasks": [{"id": "q", "description": "child", "depends_on": ["p"]}]}))
    assert got.structured_content["assignments"] == []
    assert got.structured_content["unassigned"] == [{"task": "q", "reason": "dependency 'p' cancelled"}]


async def test_a_description_of_white_space_alone_is_refused(client: Client) -> None:
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}]})).structured_content
    swarm_id = sw["swarm_id"]
    for blank in (" ", "\n\t", "\u3000"):
        got = await client.call_tool("coordinate", {"swarm_id": swarm_id, "tasks": [{"description": "fine"},
                                                                                    {"description": blank}]})
        assert got.is_error
        assert got.content[0].text == ("coordinate: tasks[1].description must say what is to be done, not only "
                                       "white space.")
    await client.call_tool("coordinate", {"swarm_id": swarm_id, "strategy": "round-robin",
                                          "tasks": [{"id": "a", "description": "🚀"}]})  # any visible text is a text
    edit = await client.call_tool("manage_task", {"swarm_id": swarm_id, "task_id": "a", "action": "edit",
                                                  "description": "  "})
    assert edit.is_error and "description must say what is to be done" in edit.content[0].text
    status = (await client.call_tool("swarm_status", {"swarm_id": swarm_id})).structured_content
    assert [t["description"] for t in status["swarm"]["tasks"]] == ["🚀"]


async def test_swarm_status_names_what_auto_uses_when_the_network_cannot_load(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ansf_mcp.coordinator import neural
    from ansf_mcp.coordinator.episode import ModelUnavailable

    def broken(*args: object, **kwargs: object) -> None:
        raise ModelUnavailable("checkpoint student.safetensors fails its checksum")

    monkeypatch.setattr(neural, "load", broken)
    monkeypatch.setattr(neural, "loaded_profiles", list)  # as if no earlier test of this process had loaded it
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}] * 2})).structured_content
    used = (await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"],
                                                  "tasks": [{"description": "x"}]})).structured_content
    status = (await client.call_tool("swarm_status", {"swarm_id": sw["swarm_id"]})).structured_content
    assert used["strategy"] == AUTO_WITHOUT_NEURAL and "fails its checksum" in used["note"]
    assert status["swarm"]["auto_uses"].startswith(f"{AUTO_WITHOUT_NEURAL} (")
    assert "the network could not be loaded (checkpoint student.safetensors fails its checksum)" in (
        status["swarm"]["auto_uses"])


async def test_a_long_dependency_cycle_is_named_by_its_length_and_where_it_closes(client: Client) -> None:
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}]})).structured_content
    tasks = [{"id": f"y{i}", "description": f"step {i}", "depends_on": [f"y{(i + 1) % 1000}"]} for i in range(1000)]
    got = await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"], "tasks": tasks})
    assert got.is_error
    assert got.content[0].text == ("dependency cycle of 1000 tasks: y0 -> y1 -> y2 -> y3 -> y4 -> y5 -> y6 -> y7 -> "
                                   "y8 -> y9 -> … -> y999 -> y0; nothing was written")
    closing = {"id": "y2", "description": "closes it", "depends_on": ["y0"]}
    short = await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"], "tasks": [*tasks[:2], closing]})
    assert short.content[0].text == "dependency cycle: y0 -> y1 -> y2 -> y0"


async def test_a_misspelt_argument_or_field_is_refused_not_dropped(client: Client) -> None:
    """A typo was dropped with its value: a task ran without its dependency, an agent got the default capacity."""
    agent = await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r", "capcity": 5}]})
    assert agent.is_error
    assert agent.content[0].text == ("spawn_swarm: agents[0].capcity is not a field of this object (check its "
                                     "spelling); nothing was done.")
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}]})).structured_content
    swarm_id = sw["swarm_id"]
    task = await client.call_tool("coordinate", {"swarm_id": swarm_id, "tasks": [
        {"id": "b", "description": "second", "dependson": ["a"]}]})
    assert task.is_error and "tasks[0].dependson is not a field" in task.content[0].text
    top = await client.call_tool("coordinate", {"swarm_id": swarm_id, "strateg": "round-robin",
                                                "tasks": [{"description": "x"}]})
    assert top.is_error
    assert top.content[0].text == ("coordinate: 'strateg' is not a parameter of coordinate (its parameters: "
                                   "swarm_id, tasks, strategy); nothing was done")
    status = (await client.call_tool("swarm_status", {"swarm_id": swarm_id})).structured_content
    assert status["swarm"]["tasks_matching"] == 0


@pytest.mark.parametrize("strategy", ["auto", "neural", "similarity", "history"])
async def test_tasks_put_up_one_call_at_a_time_spread_over_equal_agents(client: Client, strategy: str) -> None:
    # Equal agents tie exactly; the first one took every task while the others were told to wait for it.
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "dev"}] * 3})).structured_content
    chosen = []
    for i in range(6):
        answer = await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"], "strategy": strategy,
                                                        "tasks": [{"description": f"write the report number {i}"}]})
        assert not answer.is_error, answer.content[0].text
        chosen.append(answer.structured_content["assignments"][0]["agent"])
    assert sorted(chosen.count(a) for a in set(chosen)) == [2, 2, 2], chosen
    status = (await client.call_tool("swarm_status", {"swarm_id": sw["swarm_id"]})).structured_content
    assert [a["assigned_open"] for a in status["swarm"]["agents"]] == [2, 2, 2]
