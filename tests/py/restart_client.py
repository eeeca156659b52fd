"""A client of the official Python SDK (mcp 1.x) through mcpgw-shim, across a daemon restart.

Run by tests/it/restart.rs: `restart_client.py SHIM SOCKET`. It calls `fx_echo`, prints
`ready <text>`, waits for a line on stdin (the test restarts the daemon meanwhile), calls again,
waits for the tools list_changed the shim sends after it reconnected, and prints
`done <text> <tools list_changed seen>`.
"""

import os
import sys

import anyio
import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main() -> None:
    shim, socket = sys.argv[1], sys.argv[2]
    changed = anyio.Event()
    seen = 0

    async def on_message(message) -> None:
        nonlocal seen
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ToolListChangedNotification
        ):
            seen += 1
            changed.set()

    params = StdioServerParameters(
        command=shim, args=["--socket", socket], env=dict(os.environ)
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()

            async def echo(text: str) -> str:
                result = await session.call_tool("fx_echo", {"text": text})
                assert not result.isError, result
                return result.content[0].text

            print("ready", await echo("before"), flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            after = await echo("after")
            with anyio.fail_after(60):
                await changed.wait()
            print("done", after, seen, flush=True)


anyio.run(main)
