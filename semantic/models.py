"""Pydantic answer models of the semantic tools (they become output schemas and structured content)."""

from __future__ import annotations

from pydantic import BaseModel, Field


def _absent(value: object) -> bool:
    return value is None


class Symbol(BaseModel):
    name_path: str = Field(description="e.g. 'Class/method'; 'name[i]' when siblings share a name")
    kind: str
    # optional and absent (not null) when unset: a shrunk overview drops them (detail) before it drops a class's
    # members (structure), and what it drops must not be sent as nulls
    relative_path: str | None = Field(None, exclude_if=_absent)
    line: int | None = Field(None, description="1-based line of the name", exclude_if=_absent)
    column: int | None = Field(None, description="1-based column of the name", exclude_if=_absent)
    start_line: int | None = Field(None, exclude_if=_absent)
    end_line: int | None = Field(None, exclude_if=_absent)
    body: str | None = Field(None, exclude_if=_absent)
    info: str | None = Field(None, description="signature and documentation (include_info)", exclude_if=_absent)
    children: list[Symbol] | None = Field(None, exclude_if=_absent)


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


class Mention(BaseModel):
    relative_path: str
    line: int
    kind: str = Field(description="docstring, string, comment or code (Python); text where no tokenizer tells them "
                                  "apart")
    text: str = Field(description="the line, cut when long")


class Reference(BaseModel):
    line: int
    column: int
    symbol: str | None = Field(None, description="name path of the enclosing symbol; null at module level")
    context: str | None = None
    kind: str | None = Field(None, description="Python: code, import, attribute, __all__ or string annotation",
                             exclude_if=_absent)


class FileReferences(BaseModel):
    relative_path: str
    count: int = Field(description="references in this file (all of them, also those on other pages)")
    references: list[Reference]


class References(BaseModel):
    name_path: str
    relative_path: str
    total: int = Field(description="references in the whole project")
    total_files: int
    files: list[FileReferences] = Field(description="this page's references, grouped by file")
    next_cursor: str | None = Field(None, description="pass as cursor for the next page; null on the last page")
    per_file: dict[str, int] | None = None
    shrunk: str | None = None
    note: str | None = Field(None, description="Python: occurrences left out as other bindings of the name",
                             exclude_if=_absent)
    mentions: list[Mention] | None = Field(
        None, description="Python, first page: the name in docstrings, comments and other strings of the files that "
                          "use it; not references (a rename leaves them)", exclude_if=_absent)


class PatternMatch(BaseModel):
    line: int
    column: int
    text: str = Field(description="the matched line (cut around the match when long)")
    before: list[str] | None = None
    after: list[str] | None = None


class FileMatches(BaseModel):
    relative_path: str
    matches: list[PatternMatch]


class PatternMatches(BaseModel):
    pattern: str
    relative_path: str
    files: list[FileMatches]
    matches: int = Field(description="matches on this page")
    next_cursor: str | None = Field(None, description="pass as cursor for the next page; null when done")
    notes: list[str] = Field(default_factory=list)


class Diagnostic(BaseModel):
    line: int
    column: int
    end_line: int
    end_column: int
    severity: str = Field(description="error, warning, information or hint")
    message: str
    checker: str = Field(description="the program that reported it, e.g. basedpyright (types) or a language server")
    source: str | None = None
    code: str | None = None


class Diagnostics(BaseModel):
    relative_path: str
    language: str
    diagnostics: list[Diagnostic]
    counts: dict[str, int] = Field(description="diagnostics per severity")
    note: str | None = None


class EditedFile(BaseModel):
    relative_path: str
    edits: int
    start_line: int | None = Field(None, description="first line written (1-based), for one-file edits")
    end_line: int | None = None


class EditResult(BaseModel):
    action: str
    name_path: str
    new_name: str | None = None
    files: list[EditedFile]
    total_edits: int
    cache_entries_invalidated: int = Field(description="cache entries this edit made stale, removed")
    note: str | None = None
    syntax: str | None = Field(None, description="how the new content's syntax was checked before it was written")
    types: str | None = Field(None, description="how the new content's types were checked before it was written",
                              exclude_if=_absent)
    leftover_mentions: list[Mention] | None = Field(
        None, description="rename: the old name still in the renamed files (strings, comments), listed, not changed")


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
