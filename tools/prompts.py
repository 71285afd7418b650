"""Prompts: the agent loop and planning, as the client's user picks them (slash commands in most clients).

They hold what a model needs once per loop rather than on every turn: the meaning of next_task's statuses, lease
claims, manage_task's actions and paging. The tool descriptions stay a line each (every client lists them on every
connection), and each answer says what holds when it happens (`reason`, `blocked_by`, `next_cursor`).
"""

from __future__ import annotations

import re

from ansf_mcp.tools.answers import bounded_error
from ansf_mcp.tools.swarm_tools import SWARM_ID
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from ansf_mcp.board.models import ID_PATTERN

MAX_GOAL_CHARS = 8000


def _checked(name: str, value: str, pattern: str, example: str) -> str:
    """The argument as the tools would accept it, or an error that says which and why: a quote or a line break in
    an id would rewrite the instructions. Checked here, in the body: the SDK answers a failed type check of a
    prompt's arguments with a bare "Internal server error"."""
    if not re.fullmatch(pattern.strip("^$"), value):
        raise MCPError(INVALID_PARAMS, bounded_error(f"{name} {value!r} is not an id the tools accept (like "
                                                     f"{example!r}); swarm_status() lists swarms and agents"))
    return value


def register(server: MCPServer) -> None:
    @server.prompt(name="agent_loop", title="Work as a swarm agent",
                   description="The loop one agent runs: claim, work, report, until the board has nothing for it.")
    def agent_loop(swarm_id: str, agent_id: str) -> str:
        swarm_id = _checked("swarm_id", swarm_id, SWARM_ID, "swarm-0123456789ab")
        agent_id = _checked("agent_id", agent_id, ID_PATTERN, "agent-0")
        return (
            f"You are agent {agent_id} of swarm {swarm_id}. Repeat until told to stop:\n"
            f"1. Call next_task(swarm_id='{swarm_id}', agent_id='{agent_id}', wait_s=30). Its status says what "
            "holds: assigned (work on `task`; it may have been taken over from a busy or absent agent); wait (work "
            "is running elsewhere or waits on dependencies; `reason` says which: call again, wait_s waits for the "
            "board to change); done (nothing is left: stop); blocked (what is left depends on a failed or cancelled "
            "task named in `blocked_by`: stop and say so).\n"
            "2. Do the task. Its lease lasts lease_expires_in_s: for longer work call renew_lease with the `claim` "
            "number next_task gave (a call naming a claim that is over, because the lease expired and the task "
            "moved on, is refused: stop that work); if you cannot do it, call release_task so another agent can "
            "(the attempt is not counted).\n"
            "3. Call report_outcome with the claim number, success true or false, and a one-line summary of what "
            "you did or why it failed (a failure offers the task again until its attempts run out). Then go back "
            "to step 1.\n"
            "Use send_message / read_messages to ask other agents for what you need; never report success for "
            "work you did not finish."
        )

    @server.prompt(name="plan_work", title="Plan work for a swarm",
                   description="Turn a goal into tasks with dependencies and put them on a swarm's board.")
    def plan_work(goal: str, swarm_id: str | None = None) -> str:
        if not goal.strip() or len(goal) > MAX_GOAL_CHARS:
            raise MCPError(INVALID_PARAMS, f"goal needs 1 to {MAX_GOAL_CHARS} characters (it has {len(goal)})")
        if swarm_id is not None:
            swarm_id = _checked("swarm_id", swarm_id, SWARM_ID, "swarm-0123456789ab")
        target = (f"swarm {swarm_id} (swarm_status(swarm_id='{swarm_id}') shows its agents)" if swarm_id else
                  "a new swarm: call spawn_swarm with agents whose roles and capabilities fit the work")
        return (
            f"Goal: {goal}\n\nPlan it for {target}.\n"
            "1. Break the goal into tasks small enough for one agent each; give every task a description that "
            "says what done looks like, the capabilities it needs, a priority, and the tasks it depends on "
            "(only real dependencies: anything independent can run at once).\n"
            "2. Call coordinate(swarm_id, tasks) once with the whole list; read the assignments and their reasons.\n"
            "3. Watch progress with swarm_status (a page of tasks at a time: pass its next_cursor as cursor for "
            "the next; filter by state or agent) and get_task for one task whole.\n"
            "4. When a task fails, read why (get_task) and use manage_task: retry it (attempts reset, any agent "
            "may take it), edit the description, priority or depends_on of a task nobody holds, or cancel it "
            "together with every unfinished task that depends on it (edit their depends_on first to keep them). "
            "reassign_task moves an unclaimed task to another agent."
        )
