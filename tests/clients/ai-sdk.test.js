// @ts-check
// The Vercel AI SDK (`ai` with `@ai-sdk/openai`'s Responses model) against a real threadline process: chained turns
// with `previousResponseId`, plain and streamed; the SDK's default multi-turn pattern, which resends earlier output as
// `item_reference`s with no previous response; and a tool call round trip. Each case asserts what the library returned,
// what the SDK sent threadline, and the exact `messages` the Chat Completions backend received.

import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";

import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

import { startServer, startUpstream } from "./server.js";

/** @type {Awaited<ReturnType<typeof startUpstream>>} */
let upstream;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** The bodies the SDK sent threadline since the test began. @type {any[]} */
const sent = [];
/** @type {ReturnType<typeof createOpenAI>} */
let openai;

before(async () => {
  upstream = await startUpstream();
  server = await startServer(upstream.url);
  openai = createOpenAI({
    baseURL: `${server.url}/v1`,
    apiKey: "sk-test",
    fetch: async (url, init) => {
      sent.push(typeof init?.body === "string" ? JSON.parse(init.body) : null);
      return fetch(url, init);
    },
  });
});

after(async () => {
  await server?.stop();
  upstream?.close();
});

beforeEach(() => {
  sent.length = 0;
});

afterEach(() => {
  assert.equal(upstream.pending(), 0, "every scripted reply was asked for");
});

/** A message as threadline sends it upstream. */
const msg = (/** @type {string} */ role, /** @type {string} */ content) => ({ role, content });

/** A user message as the SDK sends it to the Responses API. */
const userInput = (/** @type {string} */ text) => ({ role: "user", content: [{ type: "input_text", text }] });

/** The `messages` of each upstream request since the last `script`. */
const upstreamMessages = () => upstream.requests.map((body) => body.messages);

/**
 * A GET of threadline's API.
 * @param {string} path
 */
async function get(path) {
  const response = await fetch(`${server.url}${path}`, { headers: { authorization: "Bearer sk-test" } });
  assert.equal(response.status, 200, path);
  return response.json();
}

/** The model `m` through the Responses API (threadline serves every model with the mock). */
const model = () => openai.responses("m");

describe("the Vercel AI SDK", () => {
  test("generateText chains turns with previousResponseId", async () => {
    upstream.script({ content: "Hello, Ada." }, { content: "You are Ada." });
    const first = await generateText({ model: model(), prompt: "My name is Ada." });
    assert.equal(first.text, "Hello, Ada.");
    assert.match(first.response.id, /^resp_/);
    const second = await generateText({
      model: model(),
      prompt: "Who am I?",
      providerOptions: { openai: { previousResponseId: first.response.id } },
    });
    assert.equal(second.text, "You are Ada.");
    assert.equal(second.providerMetadata?.openai?.responseId, second.response.id);
    assert.deepEqual(sent[1], { model: "m", input: [userInput("Who am I?")], previous_response_id: first.response.id });
    assert.deepEqual(upstreamMessages(), [
      [msg("user", "My name is Ada.")],
      [msg("user", "My name is Ada."), msg("assistant", "Hello, Ada."), msg("user", "Who am I?")],
    ]);
  });

  test("streamText continues a turn with previousResponseId", async () => {
    upstream.script({ content: "Noted: blue." }, { content: "Your favourite colour is blue." });
    const first = await generateText({ model: model(), prompt: "My favourite colour is blue." });
    const stream = streamText({
      model: model(),
      prompt: "What is my favourite colour?",
      providerOptions: { openai: { previousResponseId: first.response.id } },
    });
    const deltas = [];
    for await (const delta of stream.textStream) deltas.push(delta);
    assert.equal(deltas.join(""), "Your favourite colour is blue.");
    assert.ok(deltas.length > 1, `streamed in pieces: ${JSON.stringify(deltas)}`);
    assert.equal(await stream.text, "Your favourite colour is blue.");
    assert.equal(await stream.finishReason, "stop");
    const streamed = (await stream.response).id;
    assert.match(streamed, /^resp_/);
    assert.equal(sent[1].stream, true);
    assert.equal(sent[1].previous_response_id, first.response.id);
    assert.equal(upstream.requests[1].stream, true);
    assert.deepEqual(upstreamMessages()[1], [
      msg("user", "My favourite colour is blue."),
      msg("assistant", "Noted: blue."),
      msg("user", "What is my favourite colour?"),
    ]);
    // Stored as streamed: a turn continuing it has the whole conversation.
    const stored = await get(`/v1/responses/${streamed}`);
    assert.equal(stored.output[0].content[0].text, "Your favourite colour is blue.");
  });

  test("the default multi-turn pattern resends earlier output as item references, without previousResponseId", async () => {
    upstream.script({ content: "Hello, Ada." }, { content: "Your name is Ada." }, { content: "Ada, as I said." });
    /** @type {import("ai").ModelMessage[]} */
    const messages = [{ role: "user", content: "My name is Ada." }];
    const first = await generateText({ model: model(), messages });
    // The SDK keeps the stored item's id with the assistant text.
    const answer = /** @type {any} */ (first.response.messages[0]);
    const itemId = answer.content[0].providerOptions.openai.itemId;
    assert.match(String(itemId), /^msg_/);
    messages.push(...first.response.messages, { role: "user", content: "What is my name?" });
    const second = await generateText({ model: model(), messages });
    assert.equal(second.text, "Your name is Ada.");
    // The SDK sent the assistant message as a reference to the stored item, and no previous response.
    assert.deepEqual(sent[1], {
      model: "m",
      input: [userInput("My name is Ada."), { type: "item_reference", id: itemId }, userInput("What is my name?")],
    });
    // threadline put the item in its place: stored and listed as the assistant message, under an id of its own.
    const listed = (await get(`/v1/responses/${second.response.id}/input_items?order=asc`)).data;
    assert.deepEqual(listed.map((/** @type {any} */ item) => [item.type, item.role, item.content[0].text]), [
      ["message", "user", "My name is Ada."],
      ["message", "assistant", "Hello, Ada."],
      ["message", "user", "What is my name?"],
    ]);
    assert.match(listed[1].id, /^msg_/);
    assert.notEqual(listed[1].id, itemId);

    // A third turn references both earlier answers.
    messages.push(...second.response.messages, { role: "user", content: "Again?" });
    const third = await generateText({ model: model(), messages });
    assert.equal(third.text, "Ada, as I said.");
    assert.deepEqual(
      sent[2].input.map((/** @type {any} */ item) => item.type ?? item.role),
      ["user", "item_reference", "user", "item_reference", "user"],
    );
    const history = [msg("user", "My name is Ada."), msg("assistant", "Hello, Ada."), msg("user", "What is my name?")];
    assert.deepEqual(upstreamMessages(), [
      [msg("user", "My name is Ada.")],
      history,
      [...history, msg("assistant", "Your name is Ada."), msg("user", "Again?")],
    ]);
  });

  test("a tool call round trip reaches the backend as tool_calls and a tool message", async () => {
    const call = { id: "call_1", name: "weather", arguments: '{"city":"Paris"}' };
    upstream.script({ tool_calls: [call] }, { content: "It is 21 °C in Paris." });
    const weather = tool({
      description: "The weather in a city",
      inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false }),
      execute: async (/** @type {any} */ { city }) => ({ city, celsius: 21 }),
    });
    const result = await generateText({ model: model(), prompt: "Weather in Paris?", tools: { weather }, stopWhen: stepCountIs(3) });
    assert.equal(result.text, "It is 21 °C in Paris.");
    assert.equal(result.steps.length, 2);
    const [toolCall] = result.steps[0].toolCalls;
    assert.deepEqual([toolCall.toolCallId, toolCall.toolName, toolCall.input], ["call_1", "weather", { city: "Paris" }]);
    assert.deepEqual(result.steps[0].toolResults.map((result) => result.output), [{ city: "Paris", celsius: 21 }]);
    const output = JSON.stringify({ city: "Paris", celsius: 21 });
    assert.deepEqual(sent[1].input, [
      userInput("Weather in Paris?"),
      { type: "function_call", call_id: "call_1", name: "weather", arguments: call.arguments },
      { type: "function_call_output", call_id: "call_1", output },
    ]);
    assert.deepEqual(upstreamMessages(), [
      [msg("user", "Weather in Paris?")],
      [
        msg("user", "Weather in Paris?"),
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "weather", arguments: call.arguments } }] },
        { role: "tool", content: output, tool_call_id: "call_1" },
      ],
    ]);
    assert.deepEqual(upstream.requests[1].tools.map((/** @type {any} */ tool) => tool.function.name), ["weather"]);
  });
});
