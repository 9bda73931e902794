// @ts-check
// What the client tests run against: a Chat Completions backend that records every request body and answers as the
// test scripts it, and a real threadline process (THREADLINE_BIN) in front of it with a fresh SQLite database.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

/**
 * One scripted answer: assistant text, or function calls.
 * @typedef {{content?: string, tool_calls?: {id: string, name: string, arguments: string}[]}} Reply
 */

const USAGE = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };

/**
 * The `chat.completion` object of a reply, as OpenAI's Chat Completions answers a request without `stream`.
 * @param {Reply} reply
 * @param {string} model
 */
export function completion(reply, model) {
  const toolCalls = (reply.tool_calls ?? []).map(({ id, name, arguments: args }) => ({ id, type: "function", function: { name, arguments: args } }));
  /** @type {Record<string, unknown>} */
  const message = { role: "assistant", content: reply.content ?? null, refusal: null };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return {
    id: "chatcmpl-mock",
    object: "chat.completion",
    created: 1700000000,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: toolCalls.length > 0 ? "tool_calls" : "stop" }],
    usage: USAGE,
  };
}

/**
 * The `chat.completion.chunk` objects of a streamed reply, as OpenAI streams them: the role with empty content, the
 * text in pieces of at most `size` characters (or each call's header, then its arguments), the finish reason, and —
 * when `stream_options.include_usage` asks — a last chunk with the usage and no choices.
 * @param {Reply} reply
 * @param {string} model
 * @param {boolean} includeUsage
 */
export function chunks(reply, model, includeUsage, size = 4) {
  const chunk = (/** @type {object} */ delta, /** @type {string | null} */ finish = null) => ({
    id: "chatcmpl-mock",
    object: "chat.completion.chunk",
    created: 1700000000,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  const out = [chunk({ role: "assistant", content: "", refusal: null })];
  const text = reply.content ?? "";
  for (let start = 0; start < text.length; start += size) out.push(chunk({ content: text.slice(start, start + size) }));
  (reply.tool_calls ?? []).forEach(({ id, name, arguments: args }, index) => {
    out.push(chunk({ tool_calls: [{ index, id, type: "function", function: { name, arguments: "" } }] }));
    out.push(chunk({ tool_calls: [{ index, function: { arguments: args } }] }));
  });
  out.push(chunk({}, reply.tool_calls?.length ? "tool_calls" : "stop"));
  if (includeUsage) out.push({ ...chunk({}), choices: [], usage: USAGE });
  return out;
}

/**
 * A Chat Completions backend on 127.0.0.1: each `POST …/chat/completions` body is recorded, then answered with the
 * next scripted reply (streamed when the request asks); with no reply scripted it answers 500, so an unexpected
 * request fails its test. `GET …/models` lists the model `m`.
 */
export async function startUpstream() {
  /** @type {any[]} */
  const requests = [];
  /** @type {Reply[]} */
  let replies = [];
  const server = http.createServer(async (request, response) => {
    let raw = "";
    for await (const piece of request) raw += piece;
    if (request.method === "GET" && request.url?.endsWith("/models")) {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ object: "list", data: [{ id: "m", object: "model", created: 0, owned_by: "mock" }] }));
      return;
    }
    if (request.method !== "POST" || !request.url?.endsWith("/chat/completions")) {
      response.writeHead(404, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: { message: "not found", type: "invalid_request_error" } }));
      return;
    }
    const body = JSON.parse(raw);
    requests.push(body);
    const reply = replies.shift();
    if (reply === undefined) {
      response.writeHead(500, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: { message: "the mock has no reply scripted", type: "server_error" } }));
      return;
    }
    if (!body.stream) {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(completion(reply, body.model)));
      return;
    }
    response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    for (const chunk of chunks(reply, body.model, body.stream_options?.include_usage === true)) {
      response.write(`data: ${JSON.stringify(chunk)}\n\n`);
    }
    response.end("data: [DONE]\n\n");
  });
  await new Promise((ready) => server.listen(0, "127.0.0.1", () => ready(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${address.port}/v1`,
    /** The bodies received since the last `script`. */
    requests,
    /** Replaces the replies to come, and forgets the requests received so far. */
    script: (/** @type {Reply[]} */ ...next) => {
      replies = next;
      requests.length = 0;
    },
    /** The replies scripted and not yet sent. */
    pending: () => replies.length,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/**
 * Starts `threadline serve` (the binary THREADLINE_BIN names, else the debug build) on a free port with a fresh
 * SQLite database and `upstreamUrl` as its upstream; resolves once it prints its `listening on` line.
 * @param {string} upstreamUrl
 * @returns {Promise<{url: string, log: string[], stop: () => Promise<void>}>}
 */
export async function startServer(upstreamUrl) {
  const root = resolve(import.meta.dirname, "../..");
  const binary = process.env.THREADLINE_BIN || join(process.env.CARGO_TARGET_DIR || join(root, "target"), "debug", "threadline");
  const dir = mkdtempSync(join(tmpdir(), "threadline-clients-"));
  const args = ["serve", "--listen", "127.0.0.1:0", "--database-url", `sqlite://${join(dir, "clients.db")}`, "--upstream-url", upstreamUrl];
  // Only the arguments configure it (no THREADLINE_* setting of the caller's), and it logs its listening line.
  const env = { ...process.env, NO_COLOR: "1", RUST_LOG: "info,sqlx=warn" };
  for (const name of Object.keys(env)) if (name.startsWith("THREADLINE_")) delete env[name];
  const child = spawn(binary, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  /** @type {string[]} */
  const log = [];
  const url = await new Promise((found, failed) => {
    createInterface({ input: /** @type {import("node:stream").Readable} */ (child.stderr) }).on("line", (raw) => {
      const line = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
      log.push(line);
      const match = line.match(/listening on (http:\/\/\S+)/);
      if (match) found(match[1].replace(/\/$/, ""));
    });
    child.on("error", failed);
    child.on("exit", (code) => failed(new Error(`threadline (${binary}) exited with ${code} before listening:\n${log.join("\n")}`)));
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((done) => child.on("exit", done));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, log, stop };
}
