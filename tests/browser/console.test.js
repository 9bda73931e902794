// @ts-check
// The console end to end in Debian's Chromium: sign in with an admin key acting for a tenant, the lists, a chain's
// tree with its two branches, a turn's details, copy, export as JSON and Markdown, deleting a turn, a conversation,
// and a background response followed live. Run by scripts/browser-test.

import assert from "node:assert/strict";
import { mkdirSync, copyFileSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { ADMIN_KEY, call, startHeldUpstream, startServer } from "./server.js";

const ROOT = resolve(import.meta.dirname, "../..");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Awaited<ReturnType<typeof startHeldUpstream>>} */
let held;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {import("playwright-core").Page} */
let page;
/** The seeded ids. */
const ids = { r1: "", r2a: "", r2b: "", r3: "", other: "", conversation: "" };

/** Creates a response as the tenant and returns its id. @param {any} body */
async function respond(body) {
  const { status, body: answer } = await call(server.url, "POST", "/v1/responses", body);
  assert.equal(status, 200, JSON.stringify(answer));
  return /** @type {string} */ (answer.id);
}

before(async () => {
  held = await startHeldUpstream();
  server = await startServer(held.url);
  // A chain with a branch at r1 (r1 → r2a → r3, r1 → r2b), another chain, and a conversation.
  ids.r1 = await respond({ model: "echo", input: "Hello tree", metadata: { topic: "demo" } });
  ids.r2a = await respond({ model: "echo", input: "Left branch", previous_response_id: ids.r1 });
  ids.r2b = await respond({ model: "echo", input: "Right branch", previous_response_id: ids.r1 });
  ids.r3 = await respond({ model: "echo", input: "Deeper left", previous_response_id: ids.r2a });
  ids.other = await respond({ model: "echo", input: "Another chain" });
  const items = [{ type: "message", role: "user", content: "Conversation opener" }];
  const conversation = await call(server.url, "POST", "/v1/conversations", { metadata: { topic: "demo" }, items });
  ids.conversation = conversation.body.id;
  await respond({ model: "echo", input: "In the conversation", conversation: ids.conversation });

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], headless: true });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1360, height: 760 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on("dialog", (dialog) => dialog.accept());
});

after(async () => {
  await browser?.close();
  held?.release();
  await server?.stop();
  held?.close();
});

/** @param {string} selector */
const texts = (selector) => page.locator(selector).allTextContents();
/** @param {string} id */
const node = (id) => page.locator(`[data-testid=node][data-id="${id}"]`);

/** Waits until the texts of `selector` are exactly `expected`. @param {string} selector @param {string[]} expected */
async function waitTexts(selector, expected) {
  const matched = (/** @type {any} */ [sel, want]) =>
    JSON.stringify([...document.querySelectorAll(sel)].map((e) => e.textContent)) === JSON.stringify(want);
  await page.waitForFunction(matched, [selector, expected], { timeout: 10_000 }).catch(() => {});
  assert.deepEqual(await texts(selector), expected);
}

/** Clicks `testid` and waits until the list has loaded again. @param {string} testid */
async function reloadList(testid) {
  await page.getByTestId(testid).click();
  await page.locator("[data-testid=list]:not([aria-busy])").waitFor();
}

/** The download a click starts, as text. @param {string} testid */
async function download(testid) {
  const [file] = await Promise.all([page.waitForEvent("download"), page.getByTestId(testid).click()]);
  return { name: file.suggestedFilename(), text: readFileSync(/** @type {string} */ (await file.path()), "utf8") };
}

test("the page is served with its security headers, and asks for a key", async () => {
  const answer = await page.goto(`${server.url}/ui`);
  assert.equal(answer?.headers()["content-type"], "text/html; charset=utf-8");
  assert.match(answer?.headers()["content-security-policy"] || "", /^default-src 'self'; script-src 'self';/);
  await page.getByTestId("login-form").waitFor();
  await page.getByTestId("login-key").fill("sk-wrong");
  await page.getByTestId("login-submit").click();
  await waitTexts("[data-testid=error]", ["Incorrect API key provided."]);
  await page.getByTestId("login-form").waitFor();
});

test("an admin signs in for the tenant and sees its chains, newest first, searchable", async () => {
  await page.getByTestId("login-key").fill(ADMIN_KEY);
  await page.getByTestId("login-tenant").fill("team");
  await page.getByTestId("login-submit").click();
  // Every turn that continues nothing is a root, also the conversation's.
  await waitTexts("[data-testid=row-preview]", ["In the conversation", "Another chain", "Hello tree"]);
  assert.equal(await page.getByTestId("who").textContent(), "tenant team");
  await page.getByTestId("search").fill("hello");
  await reloadList("filter");
  await waitTexts("[data-testid=row-preview]", ["Hello tree"]);
  await page.getByTestId("search").fill("");
  await page.getByTestId("metadata-filter").fill("topic");
  await reloadList("filter");
  await waitTexts("[data-testid=error]", ["Write the metadata filter as key=value."]);
  await page.getByTestId("metadata-filter").fill("topic=demo");
  await reloadList("filter");
  await waitTexts("[data-testid=row-preview]", ["Hello tree"]);
  assert.equal(await page.getByTestId("error").isVisible(), false);
  await page.getByTestId("metadata-filter").fill("");
  await reloadList("filter");
  assert.equal(await page.getByTestId("list-row").count(), 3);
});

test("a chain opens as a tree showing both branches with their previews", async () => {
  await page.locator(`[data-testid=list-row][data-id="${ids.r1}"]`).click();
  await page.getByTestId("branch").nth(1).waitFor();
  assert.deepEqual(await texts("[data-testid=branch] > .branch-marker"), ["branch 1 of 2", "branch 2 of 2"]);
  const branch = (/** @type {number} */ i, /** @type {string} */ field) => page.getByTestId("branch").nth(i).getByTestId(field).allTextContents();
  assert.deepEqual(await branch(0, "node-preview"), ["Left branch", "Deeper left"]);
  assert.deepEqual(await branch(0, "node-output"), ["echo: Left branch [turn 2, 3 messages in context]", "echo: Deeper left [turn 3, 5 messages in context]"]);
  assert.deepEqual(await branch(1, "node-preview"), ["Right branch"]);
  assert.deepEqual(await branch(1, "node-output"), ["echo: Right branch [turn 2, 3 messages in context]"]);
  assert.deepEqual(await node(ids.r1).getByTestId("node-preview").textContent(), "Hello tree");
});

test("a turn opens its details with the path to it highlighted, and its id copies", async () => {
  await node(ids.r3).click();
  await waitTexts("[data-testid=detail-id]", [ids.r3]);
  await waitTexts("[data-testid=detail-input] [data-testid=item]", ["userDeeper left"]);
  await waitTexts("[data-testid=detail-output] [data-testid=item]", ["assistantecho: Deeper left [turn 3, 5 messages in context]"]);
  assert.deepEqual(await texts("[data-testid=detail-status]"), ["completed"]);
  assert.deepEqual(await texts("[data-testid=detail-model]"), ["echo"]);
  const onPath = await page.locator("[data-testid=node].on-path").evaluateAll((nodes) => nodes.map((n) => /** @type {HTMLElement} */ (n).dataset.id));
  assert.deepEqual(onPath, [ids.r1, ids.r2a, ids.r3]);
  const directory = join(ROOT, "target", "browser");
  mkdirSync(directory, { recursive: true });
  await page.screenshot({ path: join(directory, "console-tree.png") });
  // The copy in docs/ (shown by docs/console.md) changes with every run (ids, times): refreshed only when asked for.
  if (process.env.UPDATE_DOCS_SCREENSHOT === "1") copyFileSync(join(directory, "console-tree.png"), join(ROOT, "docs", "console-tree.png"));

  await page.getByTestId("copy-id").click();
  await page.getByTestId("copied").waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), ids.r3);
});

test("the chain to a turn exports as JSON and as Markdown", async () => {
  /** @type {{response: any, input: any[]}[]} */
  const chain = [];
  for (const id of [ids.r1, ids.r2a, ids.r3]) {
    const response = (await call(server.url, "GET", `/v1/responses/${id}`)).body;
    const input = (await call(server.url, "GET", `/v1/responses/${id}/input_items?order=asc`)).body.data;
    chain.push({ response, input });
  }
  const json = await download("export-json");
  assert.equal(json.name, `chain-${ids.r3}.json`);
  const turns = chain.map(({ response: r, input }) => ({
    id: r.id, previous_response_id: r.previous_response_id, created_at: r.created_at, completed_at: r.completed_at,
    model: "echo", status: "completed", instructions: null, usage: r.usage, input, output: r.output,
  }));
  assert.deepEqual(JSON.parse(json.text), { object: "chain", id: ids.r3, turns });

  const markdown = await download("export-md");
  assert.equal(markdown.name, `chain-${ids.r3}.md`);
  const when = (/** @type {number} */ s) => new Date(s * 1000).toISOString().replace("T", " ").slice(0, 19);
  const turn = (/** @type {number} */ i, /** @type {string} */ said, /** @type {string} */ answer) => {
    const { response: r } = chain[i];
    return `## Turn ${i + 1} · ${r.id}\n\necho · completed · ${when(r.created_at)} UTC · ${r.usage.input_tokens} in · ${r.usage.output_tokens} out\n\n**user**\n\n${said}\n\n**assistant**\n\n${answer}`;
  };
  const expected = [
    `# Chain ending at ${ids.r3}`,
    turn(0, "Hello tree", "echo: Hello tree [turn 1, 1 messages in context]"),
    turn(1, "Left branch", "echo: Left branch [turn 2, 3 messages in context]"),
    turn(2, "Deeper left", "echo: Deeper left [turn 3, 5 messages in context]"),
  ].join("\n\n");
  assert.equal(markdown.text, `${expected}\n`);
});

test("deleting a turn removes it from the tree and from the API", async () => {
  await node(ids.r2b).click();
  await waitTexts("[data-testid=detail-id]", [ids.r2b]);
  await page.getByTestId("delete-turn").click();
  await node(ids.r2b).waitFor({ state: "detached" });
  assert.equal(await page.getByTestId("branch").count(), 0);
  await waitTexts("[data-testid=node-preview]", ["Hello tree", "Left branch", "Deeper left"]);
  const gone = await call(server.url, "GET", `/v1/responses/${ids.r2b}`);
  assert.deepEqual(gone, {
    status: 404,
    body: { error: { message: `Response with id '${ids.r2b}' not found.`, type: "invalid_request_error", param: null, code: null } },
  });
});

test("a turn deleted in the middle stays grey, and deleting its tree removes everything under it", async () => {
  await node(ids.r2a).click();
  await waitTexts("[data-testid=detail-id]", [ids.r2a]);
  await page.getByTestId("delete-turn").click();
  await waitTexts(`[data-testid=node][data-id="${ids.r2a}"] [data-testid=status]`, ["deleted"]);
  assert.equal(await node(ids.r2a).getAttribute("class"), "node deleted");
  await waitTexts("[data-testid=node-preview]", ["Hello tree", "Deeper left"]);
  await node(ids.r2a).click();
  await page.getByTestId("delete-tree").click();
  await waitTexts("[data-testid=node-preview]", ["Hello tree"]);
  assert.equal(await page.locator("[data-testid=node]:not(.deleted)").count(), 1);
  assert.equal((await call(server.url, "GET", `/v1/responses/${ids.r3}`)).status, 404);
});

test("a conversation opens as its items and can be deleted", async () => {
  await reloadList("tab-conversations");
  await waitTexts("[data-testid=row-preview]", ["Conversation opener"]);
  await page.locator(`[data-testid=list-row][data-id="${ids.conversation}"]`).click();
  await waitTexts("[data-testid=conversation-items] [data-testid=item]", [
    "userConversation opener",
    "userIn the conversation",
    "assistantecho: In the conversation [turn 2, 2 messages in context]",
  ]);
  await page.getByTestId("delete-conversation").click();
  await waitTexts("[data-testid=list] li", ["nothing here yet"]);
  const gone = await call(server.url, "GET", `/v1/conversations/${ids.conversation}`);
  assert.equal(gone.status, 404);
  assert.equal(gone.body.error.message, `Conversation with id '${ids.conversation}' not found.`);
});

test("a background response is followed live until it completes", async () => {
  const id = await respond({ model: "held", input: "Think it over", background: true });
  await reloadList("tab-chains");
  await page.locator(`[data-testid=list-row][data-id="${id}"]`).click();
  // The backend holds its reply after the first piece: the page shows it while the response runs.
  await waitTexts(`[data-testid=node][data-id="${id}"] [data-testid=node-output]`, ["Thinking "]);
  assert.deepEqual(await node(id).getByTestId("status").allTextContents(), ["in_progress"]);
  await waitTexts("[data-testid=detail-output] [data-testid=item]", ["assistantThinking "]);
  held.release();
  await waitTexts(`[data-testid=node][data-id="${id}"] [data-testid=status]`, ["completed"]);
  assert.deepEqual(await node(id).getByTestId("node-output").allTextContents(), ["Thinking done."]);
  await waitTexts("[data-testid=detail-output] [data-testid=item]", ["assistantThinking done."]);
});

test("signing out asks for the key again", async () => {
  await page.getByTestId("sign-out").click();
  await page.getByTestId("login-form").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
});
