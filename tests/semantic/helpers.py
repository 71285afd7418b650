from __future__ import annotations

from mcp import Client
from pydantic import BaseModel


async def call(server, name: str, args: dict):
    async with Client(server) as c:
        return await c.call_tool(name, args)


async def ok(server, name: str, args: dict) -> dict:
    r = await call(server, name, args)
    assert not r.is_error, r.content
    return r.structured_content


async def err(server, name: str, args: dict) -> str:
    r = await call(server, name, args)
    assert r.is_error, r.structured_content
    return " ".join(getattr(c, "text", "") for c in r.content)


def flat(answer: dict | BaseModel) -> list[dict]:
    """A find_references page (structured content or the service's model) as one list of references, each with
    its relative_path."""
    if isinstance(answer, BaseModel):
        answer = answer.model_dump()
    return [{"relative_path": f["relative_path"], **r} for f in answer["files"] for r in f["references"]]
