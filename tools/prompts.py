"""Prompts: the agent loop and planning, as the client's user picks them (slash commands in most clients)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer


def register(server: MCPServer) -> None:
    @server.prompt(name="agent_loop", title="Work as a swarm agent",
                   description="The loop one agent runs: claim, work, report, until the board has nothing for it.")
    def agent_loop(swarm_id: str, agent_id: str) -> str:
        return (
            f"You are agent {agent_id} of swarm {swarm_id}. Repeat until told to stop:\n"
            f"1. Call next_task(swarm_id='{swarm_id}', agent_id='{agent_id}'). If it gives you no task, read its "
            "reason: when the board says everything is done, or that your remaining work is blocked by a failed "
            "task, stop and say so; when work is still running elsewhere, wait a little and ask again.\n"
            "2. Do the task it gives you. If it takes longer than the lease, call renew_lease with the claim "
            "number; if you cannot do it, call release_task so another agent can.\n"
            "3. Call report_outcome with the claim number, success true or false, and a one-line summary of what "
            "you did or why it failed. Then go back to step 1.\n"
            "Use send_message / read_messages to ask other agents for what you need; never report success for "
            "work you did not finish."
        )

    @server.prompt(name="plan_work", title="Plan work for a swarm",
                   description="Turn a goal into tasks with dependencies and put them on a swarm's board.")
    def plan_work(goal: str, swarm_id: str | None = None) -> str:
        target = (f"swarm {swarm_id} (swarm_status(swarm_id='{swarm_id}') shows its agents)" if swarm_id else
                  "a new swarm: call spawn_swarm with agents whose roles and capabilities fit the work")
        return (
            f"Goal: {goal}\n\nPlan it for {target}.\n"
            "1. Break the goal into tasks small enough for one agent each; give every task a description that "
            "says what done looks like, the capabilities it needs, a priority, and the tasks it depends on "
            "(only real dependencies: anything independent can run at once).\n"
            "2. Call coordinate(swarm_id, tasks) once with the whole list; read the assignments and their reasons.\n"
            "3. Watch progress with swarm_status; when a task fails, read why and decide whether to re-plan "
            "the tasks that depend on it."
        )
