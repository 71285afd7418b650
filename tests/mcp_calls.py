"""Calling tools through a real MCP client, the way every end-to-end test does."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
from mcp import Client
from mcp.types import Tool, ToolAnnotations


@dataclass(frozen=True)
class Hints:
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool


def hints(tool: Tool) -> Hints:
    """A tool's annotations as a client reads them: a hint the server leaves out takes the protocol's default
    (the server lists only hints that differ from it, to keep tools/list small)."""
    a = tool.annotations or ToolAnnotations()

    def value(v: bool | None, default: bool) -> bool:
        return default if v is None else v

    return Hints(read_only=value(a.read_only_hint, False), destructive=value(a.destructive_hint, True),
                 idempotent=value(a.idempotent_hint, False), open_world=value(a.open_world_hint, True))


async def call(client: Client, tool: str, /, **args):
    """The tool's structured answer; the test fails with the tool's message if it answered an error."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def error(client: Client, tool: str, /, **args) -> str:
    """The tool's error text; the test fails if the tool accepted the call."""
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool} accepted {args!r}"
    return result.content[0].text


async def read_while_sent(
    reader: Client, sender: Client, swarm_id: str, body: str, *, send_after_s: float, wait_s: float
) -> tuple[dict, float]:
    """agent-1 waits in read_messages(wait_s) on `reader` while agent-0 sends it `body` through `sender` after
    `send_after_s`: (the inbox it got, seconds it waited)."""
    got: dict = {}

    async def read() -> None:
        started = time.monotonic()
        got["inbox"] = await call(reader, "read_messages", swarm_id=swarm_id, agent_id="agent-1", wait_s=wait_s)
        got["waited"] = time.monotonic() - started

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.sleep(send_after_s)
        await call(sender, "send_message", swarm_id=swarm_id, from_agent="agent-0", to_agent="agent-1", body=body)
    return got["inbox"], got["waited"]
