"""An MCP server (stdio, standard library only) from a newer spec than any SDK knows.

Every item it lists and the result of its tool carry members no SDK has a type for
(`execution.taskSupport` of the 2025-11-25 tasks extension, and `x-future`), and its tool list
comes in two pages. The gateway must pass all of them on untouched (issue 11, item 3).
"""

import json
import sys

FUTURE = {"x-future": {"nested": [1, "two", None], "since": "2027-01-01"}}

TOOL_PAGES = {
    None: (
        [
            {
                "name": "research",
                "description": "Researches a question (a task).",
                "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
                "execution": {"taskSupport": "optional"},
                **FUTURE,
            }
        ],
        "page-2",
    ),
    "page-2": (
        [{"name": "plain", "description": "Nothing new.", "inputSchema": {"type": "object"}}],
        None,
    ),
}


def result_of(method, params):
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}, "prompts": {}, "resources": {}},
            "serverInfo": {"name": "future", "version": "1.0.0"},
        }
    if method == "tools/list":
        tools, next_cursor = TOOL_PAGES[params.get("cursor")]
        page = {"tools": tools}
        if next_cursor:
            page["nextCursor"] = next_cursor
        return page
    if method == "prompts/list":
        return {"prompts": [{"name": "brief", "description": "A brief.", **FUTURE}]}
    if method == "resources/list":
        return {"resources": [{"uri": "future://notes", "name": "notes", **FUTURE}]}
    if method == "resources/templates/list":
        return {
            "resourceTemplates": [
                {"uriTemplate": "future://notes/{id}", "name": "note", **FUTURE}
            ]
        }
    if method == "tools/call":
        return {"content": [{"type": "text", "text": "done"}], **FUTURE}
    if method == "ping":
        return {}
    return None


def main():
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "id" not in message or "method" not in message:
            continue
        result = result_of(message["method"], message.get("params") or {})
        if result is None:
            reply = {"code": -32601, "message": "Method not found"}
            response = {"jsonrpc": "2.0", "id": message["id"], "error": reply}
        else:
            response = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
