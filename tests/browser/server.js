// @ts-check
// What the console test runs against: the debug threadline binary on a free port with a fresh SQLite database,
// keys on (a tenant key and an admin key), the built-in echo model, and a Chat Completions backend for the model
// `held` whose streamed reply stops after its first piece until the test releases it.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const TEAM_KEY = "sk-team";
export const ADMIN_KEY = "sk-admin";

/**
 * A Chat Completions backend streaming "Thinking " then, once `release()` is called, "done.".
 * @returns {Promise<{url: string, release: () => void, close: () => void}>}
 */
export async function startHeldUpstream() {
  /** @type {() => void} */
  let release = () => {};
  const released = new Promise((resolve) => (release = () => resolve(undefined)));
  const chunk = (/** @type {any} */ delta, /** @type {string | null} */ finish = null) =>
    `data: ${JSON.stringify({ id: "chatcmpl-held", object: "chat.completion.chunk", created: 0, model: "held", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const server = http.createServer(async (request, response) => {
    for await (const _ of request);
    if (request.method === "GET") {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ object: "list", data: [{ id: "held", object: "model", created: 0, owned_by: "test" }] }));
      return;
    }
    response.writeHead(200, { "content-type": "text/event-stream" });
    response.write(chunk({ role: "assistant", content: "Thinking " }));
    await released;
    response.write(chunk({ content: "done." }));
    response.write(chunk({}, "stop"));
    response.end("data: [DONE]\n\n");
  });
  await new Promise((ready) => server.listen(0, "127.0.0.1", () => ready(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${address.port}/v1`, release, close: () => server.closeAllConnections() || server.close() };
}

/**
 * Starts `target/debug/threadline serve` and resolves once it prints its `listening on` line.
 * @param {string} heldUrl the base URL of the held backend
 * @returns {Promise<{url: string, log: string[], stop: () => Promise<void>}>}
 */
export async function startServer(heldUrl) {
  const root = resolve(import.meta.dirname, "../..");
  const binary = join(process.env.CARGO_TARGET_DIR || join(root, "target"), "debug", "threadline");
  const dir = mkdtempSync(join(tmpdir(), "threadline-console-"));
  const upstreams = `[{name="echo", kind="echo", models=["echo"]}, {name="held", kind="chat_completions", base_url="${heldUrl}", models=["held"]}]`;
  const child = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--database-url", `sqlite://${join(dir, "console.db")}`], {
    env: { ...process.env, THREADLINE_UPSTREAMS: upstreams, THREADLINE_API_KEYS: `team:${TEAM_KEY}`, THREADLINE_ADMIN_KEYS: `ops:${ADMIN_KEY}`, NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  /** @type {string[]} */
  const log = [];
  const url = await new Promise((found, failed) => {
    createInterface({ input: child.stderr }).on("line", (raw) => {
      const line = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
      log.push(line);
      const match = line.match(/listening on (http:\/\/\S+)/);
      if (match) found(match[1].replace(/\/$/, ""));
    });
    child.on("exit", (code) => failed(new Error(`threadline exited with ${code} before listening:\n${log.join("\n")}`)));
  });
  const stop = async () => {
    const exited = new Promise((done) => child.on("exit", done));
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, log, stop };
}

/**
 * A JSON call to the server as the tenant key: the status and body.
 * @param {string} base @param {string} method @param {string} path @param {any} [body]
 * @returns {Promise<{status: number, body: any}>}
 */
export async function call(base, method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${TEAM_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}
