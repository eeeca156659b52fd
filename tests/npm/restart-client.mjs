// A client of the official TypeScript SDK through mcpgw-shim, across a daemon restart.
//
// Run by tests/it/restart.rs: `node restart-client.mjs SHIM SOCKET`. It calls `fx_echo`,
// prints `ready <text>`, waits for a line on stdin (the test restarts the daemon meanwhile),
// calls again, waits for the tools list_changed the shim sends after it reconnected, and
// prints `done <text> <tools list_changed seen>`. The SDK is the one the reference servers
// in package.json depend on.

import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const [shim, socket] = process.argv.slice(2);
const transport = new StdioClientTransport({
  command: shim,
  args: ["--socket", socket],
  env: process.env,
  stderr: "inherit",
});
const client = new Client({ name: "mcpgw-it-restart", version: "0" });
let seen = 0;
let changed;
const listChanged = new Promise((resolve) => (changed = resolve));
client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
  seen += 1;
  changed();
});
await client.connect(transport);

async function echo(text) {
  const result = await client.callTool({ name: "fx_echo", arguments: { text } });
  if (result.isError) throw new Error(JSON.stringify(result));
  return result.content[0].text;
}

console.log("ready", await echo("before"));
const lines = readline.createInterface({ input: process.stdin });
await new Promise((resolve) => lines.once("line", resolve));
const after = await echo("after");
await listChanged;
console.log("done", after, seen);
await client.close();
process.exit(0);
