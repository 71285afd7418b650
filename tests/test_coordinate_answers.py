"""What an agent reads back from `coordinate` and `swarm_status` at the edges, through the SDK client: decisions
too large for one answer, and what the current operating phase lets `auto` use."""

from __future__ import annotations

import pytest
from mcp import Client

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
