"""Pydantic answer models of the semantic tools (they become output schemas and structured content)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Symbol(BaseModel):
    name_path: str = Field(description="e.g. 'Class/method'; 'name[i]' when siblings share a name")
    kind: str
    relative_path: str
    line: int = Field(description="1-based line of the name")
    column: int = Field(description="1-based column of the name")
    start_line: int
    end_line: int
    body: str | None = None
    children: list[Symbol] | None = None


class SymbolsOverview(BaseModel):
    relative_path: str
    files: dict[str, list[Symbol]] = Field(description="top-level symbols per file")
    per_file: dict[str, int] | None = None
    total: int | None = None
    notes: list[str] = Field(default_factory=list)
    shrunk: str | None = Field(None, description="set when the answer was reduced to fit")


class FoundSymbols(BaseModel):
    total: int
    matches: list[Symbol]
    truncated: bool = False
    per_file: dict[str, int] | None = None
    notes: list[str] = Field(default_factory=list)
    shrunk: str | None = None


class Reference(BaseModel):
    relative_path: str
    line: int
    column: int
    symbol: str | None = Field(None, description="name path of the enclosing symbol; null at module level")
    context: str | None = None


class References(BaseModel):
    name_path: str
    relative_path: str
    total: int
    references: list[Reference]
    per_file: dict[str, int] | None = None
    shrunk: str | None = None


class Definition(BaseModel):
    relative_path: str | None = Field(None, description="null when the definition is outside the project")
    external_path: str | None = None
    line: int
    column: int
    symbol: str | None = None
    context: str | None = None


class Definitions(BaseModel):
    relative_path: str
    line: int
    column: int
    definitions: list[Definition]
    note: str | None = None
