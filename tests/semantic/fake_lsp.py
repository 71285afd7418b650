"""A minimal LSP server for lifecycle tests: hangs on the first documentSymbol when told to.

argv: [marker] [mode]. With a marker path, the first documentSymbol (the marker not yet there) is never answered:
mode "hang" (the default) keeps answering the rest; mode "mute" closes its output half a second later and answers
nothing more, alive (a death as its client sees it, before the process is reaped). Marker "publish-and-die":
publishes one diagnostic for the first file opened, then exits (an answer that arrived before the death)."""

import json
import os
import sys
import time

marker = sys.argv[1] if len(sys.argv) > 1 else ""
mode = sys.argv[2] if len(sys.argv) > 2 else "hang"
muted = False
inp, out = sys.stdin.buffer, sys.stdout.buffer


def send(obj):
    body = json.dumps(obj).encode()
    out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    out.flush()


while True:
    length = None
    while True:
        line = inp.readline()
        if not line:
            sys.exit(0)
        if line.startswith(b"Content-Length:"):
            length = int(line.split(b":")[1])
        if line in (b"\r\n", b"\n"):
            break
    msg = json.loads(inp.read(length))
    if muted:
        continue
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"capabilities": {"documentSymbolProvider": True}}})
    elif method == "textDocument/didOpen" and marker == "publish-and-die":
        uri = msg["params"]["textDocument"]["uri"]
        rng = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 4}}
        send({"jsonrpc": "2.0", "method": "textDocument/publishDiagnostics", "params": {
            "uri": uri, "diagnostics": [{"range": rng, "severity": 1, "message": "fake error"}]}})
        sys.exit(0)
    elif method == "textDocument/documentSymbol":
        if marker == "always":
            continue  # hang forever
        if marker and not os.path.exists(marker):
            open(marker, "w").close()
            if mode == "mute":
                time.sleep(0.5)  # time for a second call to queue behind this one
                os.close(1)
                muted = True
            continue  # hang: never answer this one
        rng = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 5}}
        send({"jsonrpc": "2.0", "id": mid, "result": [
            {"name": "fake", "kind": 12, "range": rng, "selectionRange": rng, "children": []}]})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "result": None})
