"""The tool families `ansf serve --tools` chooses from; server/app.py registers each under its name.

`agent` is the part of the board a worker agent calls in its loop: sixteen workers pay for its descriptions
on every turn, while one lead takes `board` for planning and managing the swarm.
"""

TOOL_FAMILIES = ("board", "agent", "system", "semantic", "bench")

AGENT_TOOLS = frozenset({
    "next_task", "renew_lease", "release_task", "report_outcome", "send_message", "read_messages", "swarm_status",
})
