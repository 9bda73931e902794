// @ts-check
// The console page: sign-in, the lists of chains and conversations, a chain's tree with a turn's details and
// actions (delete, export, copy), a conversation's items, and running responses followed live.

import * as api from "./api.js";
import { chainJson, chainMarkdown, download } from "./export.js";
import { h, renderItems, statusPill, time, tokens } from "./render.js";
import { highlight, pathTo, renderTree, shortId } from "./tree.js";

/** @typedef {import("./tree.js").TreeNode} TreeNode */

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const view = $("view");

const state = {
  /** @type {"chains" | "conversations"} */
  tab: "chains",
  /** @type {string | undefined} the `after` of the list's next page */
  after: undefined,
  /** the open tree: its answer, and the selected turn */
  /** @type {{id: string, path: string[], data: TreeNode[], has_more: boolean} | null} */
  tree: null,
  selected: "",
  /** aborts the live streams of the open view */
  live: new AbortController(),
  /** @type {Map<string, string>} the text so far of each response followed live */
  liveText: new Map(),
};

// ---- errors and sign-in ----

/** Shows an error's message (a 401 asks for a key instead). @param {unknown} err */
function fail(err) {
  if (err instanceof api.ApiError && err.status === 401) {
    showLogin();
    // Without a key the form says enough; with one, the key was refused.
    if (!api.credentials().key) return;
  }
  const error = $("error");
  error.textContent = err instanceof Error ? err.message : String(err);
  error.hidden = false;
}

/** Runs an action, showing its error if it fails. @param {() => Promise<void>} action */
async function run(action) {
  $("error").hidden = true;
  try {
    await action();
  } catch (err) {
    fail(err);
  }
}

function showLogin() {
  $("main").hidden = true;
  $("login").hidden = false;
  /** @type {HTMLInputElement} */ ($("login-key")).focus();
}

function showWho() {
  const { key, tenant } = api.credentials();
  $("sign-out").hidden = !key;
  $("who").textContent = key ? (tenant ? `tenant ${tenant}` : "signed in") : "";
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = /** @type {HTMLInputElement} */ ($("login-key")).value.trim();
  const tenant = /** @type {HTMLInputElement} */ ($("login-tenant")).value.trim();
  api.signIn(key, tenant);
  $("login").hidden = true;
  start();
});

$("sign-out").addEventListener("click", () => {
  api.signOut();
  state.live.abort();
  view.replaceChildren();
  showWho();
  showLogin();
});

// ---- the lists ----

/** The list's query: search and a `key=value` metadata filter. */
function listQuery() {
  /** @type {Record<string, string | number | undefined>} */
  const query = { limit: 20, search: /** @type {HTMLInputElement} */ ($("search")).value.trim() };
  const filter = /** @type {HTMLInputElement} */ ($("metadata")).value.trim();
  if (filter) {
    const at = filter.indexOf("=");
    if (at < 1) throw new Error("Write the metadata filter as key=value.");
    query[`metadata[${filter.slice(0, at).trim()}]`] = filter.slice(at + 1).trim();
  }
  if (state.tab === "chains") query.root = "true";
  return query;
}

/** Loads the first page of the list (or, with `more`, the next one). @param {boolean} [more] */
async function loadList(more = false) {
  const list = $("list");
  list.setAttribute("aria-busy", "true");
  try {
    await fillList(list, more);
  } finally {
    list.removeAttribute("aria-busy");
  }
}

/** @param {HTMLElement} list @param {boolean} more */
async function fillList(list, more) {
  if (!more) state.after = undefined;
  const path = state.tab === "chains" ? "/v1/responses" : "/v1/conversations";
  const page = await api.get(path, { ...listQuery(), after: state.after });
  const rows = page.data.map((/** @type {any} */ entry) => listRow(entry));
  if (more) list.append(...rows);
  else list.replaceChildren(...rows);
  if (!more && !rows.length) list.append(h("li", { class: "muted empty" }, "nothing here yet"));
  state.after = page.last_id || undefined;
  $("more").hidden = !page.has_more;
}

/** A row of the list. @param {any} entry */
function listRow(entry) {
  const chain = state.tab === "chains";
  const kind = chain ? h("span", {}, entry.model || "", " ", statusPill(entry.status)) : h("span", { class: "muted" }, "conversation");
  const open = () => run(() => (chain ? openTree(entry.id) : openConversation(entry.id)));
  return h(
    "li",
    {},
    h(
      "button",
      { type: "button", class: "row", testid: "list-row", "data-id": entry.id, onclick: open },
      h("div", { class: "row-head" }, h("code", { title: entry.id }, shortId(entry.id)), h("span", { class: "muted" }, time(entry.created_at))),
      h("div", { class: "row-kind" }, kind),
      h("div", { class: "row-preview", testid: "row-preview" }, entry.preview || "(no text)"),
    ),
  );
}

for (const tab of document.querySelectorAll("[data-tab]")) {
  tab.addEventListener("click", () => {
    state.tab = /** @type {any} */ (tab).dataset.tab;
    for (const other of document.querySelectorAll("[data-tab]")) other.classList.toggle("active", other === tab);
    run(() => loadList());
  });
}
$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  run(() => loadList());
});
$("more").addEventListener("click", () => run(() => loadList(true)));

// ---- a chain's tree ----

/** Opens the tree under `id`, selecting `select` (else its top). @param {string} id @param {string} [select] */
async function openTree(id, select) {
  const tree = await api.get(`/v1/responses/${id}/tree`);
  state.live.abort();
  state.live = new AbortController();
  state.tree = tree;
  const canvas = h("div", { class: "tree", testid: "tree" }, renderTree(tree.data, (node) => run(() => selectNode(node))));
  const notes = [
    tree.path.length ? h("span", { class: "muted" }, `continues ${tree.path.length} earlier turn(s)`) : null,
    tree.has_more ? h("span", { class: "muted" }, "only part of this tree is shown") : null,
  ];
  view.replaceChildren(
    h("div", { class: "view-head" }, h("h2", {}, "Chain ", h("code", {}, tree.id)), ...notes),
    h("div", { class: "split" }, canvas, h("div", { class: "detail", testid: "detail" })),
  );
  for (const node of tree.data) if (node.status === "queued" || node.status === "in_progress") followLive(node.id);
  const initial = tree.data.find((/** @type {TreeNode} */ node) => node.id === select) ? select : tree.data[0].id;
  await selectNode(initial || tree.data[0].id);
}

/** The card of a node in the open tree. @param {string} id */
const cardOf = (id) => /** @type {HTMLElement | null} */ (view.querySelector(`[data-testid=node][data-id="${id}"]`));

/** Selects a turn: highlights its path and shows its details. @param {string} id */
async function selectNode(id) {
  if (!state.tree) return;
  state.selected = id;
  highlight(view, pathTo(state.tree.data, id), id);
  const detail = /** @type {HTMLElement} */ (view.querySelector("[data-testid=detail]"));
  const node = state.tree.data.find((candidate) => candidate.id === id);
  if (node?.deleted) {
    detail.replaceChildren(h("h3", {}, h("code", {}, id)), h("p", { class: "muted" }, "This turn was deleted; its continuations remain."), actions(id, false));
    return;
  }
  const [response, input] = await Promise.all([
    api.get(`/v1/responses/${id}`),
    api.all(`/v1/responses/${id}/input_items`, { order: "asc" }),
  ]);
  if (state.selected !== id) return;
  // While it runs, the stream followed live may be ahead of what was read.
  const running = response.status === "queued" || response.status === "in_progress";
  const live = state.liveText.get(id);
  const seconds = response.completed_at - response.created_at;
  const latency = response.completed_at ? (seconds ? `${seconds} s` : "under 1 s") : "–";
  const facts = [
    ["status", statusPill(response.status)],
    ["model", response.model],
    ["created", `${time(response.created_at)} UTC`],
    ["latency", latency],
    ["tokens", tokens(response.usage)],
  ];
  detail.replaceChildren(
    h("h3", {}, h("code", { testid: "detail-id" }, id)),
    h("dl", { class: "facts" }, ...facts.flatMap(([name, value]) => [h("dt", {}, name), h("dd", { testid: `detail-${name}` }, value)])),
    actions(id, true),
    h("h4", {}, "Input"),
    renderItems(input, "detail-input"),
    h("h4", {}, "Output"),
    renderItems(running && live ? [{ type: "message", role: "assistant", content: live }] : response.output, "detail-output"),
  );
}

/** A turn's actions. @param {string} id @param {boolean} live whether the turn itself is still stored */
function actions(id, live) {
  const copied = h("span", { class: "copied", testid: "copied", hidden: true }, "copied");
  const copy = async () => {
    await navigator.clipboard.writeText(id);
    copied.hidden = false;
    setTimeout(() => (copied.hidden = true), 2000);
  };
  const button = (/** @type {string} */ label, /** @type {string} */ testid, /** @type {() => Promise<void>} */ action, danger = false) =>
    h("button", { type: "button", class: danger ? "danger" : "", testid, onclick: () => run(action) }, label);
  return h(
    "div",
    { class: "actions" },
    button("Copy id", "copy-id", copy),
    copied,
    button("Export JSON", "export-json", () => exportChain(id, "json")),
    button("Export Markdown", "export-md", () => exportChain(id, "md")),
    live ? button("Delete turn", "delete-turn", () => deleteTurn(id), true) : null,
    button("Delete tree", "delete-tree", () => deleteTree(id), true),
  );
}

/** Deletes one turn, then shows the tree again. @param {string} id */
async function deleteTurn(id) {
  if (!state.tree || !confirm(`Delete the turn ${id}? Its continuations stay.`)) return;
  await api.remove(`/v1/responses/${id}`);
  await reopen(id);
}

/** Deletes a turn and every turn under it, leaves first. @param {string} id */
async function deleteTree(id) {
  if (!state.tree) return;
  const count = state.tree.data.filter((node) => !node.deleted && pathTo(state.tree?.data || [], node.id).includes(id)).length;
  if (!confirm(`Delete ${id} and every turn under it (${count} stored turns)?`)) return;
  await removeSubtree(id);
  await reopen(id);
}

/** Deletes every stored turn under `id` and `id` itself, leaves first. @param {string} id */
async function removeSubtree(id) {
  const loaded = state.tree?.data || [];
  if (loaded.find((node) => node.id === id)?.deleted) {
    // A deleted turn has no tree of its own; its continuations do.
    for (const child of loaded.filter((node) => node.previous_response_id === id)) await removeSubtree(child.id);
    return;
  }
  for (;;) {
    const tree = await api.get(`/v1/responses/${id}/tree`, { depth: 1000, limit: 1000 });
    // Breadth-first order reversed: every turn goes after its continuations; the top last, once all are loaded.
    const doomed = tree.data.filter((/** @type {TreeNode} */ node) => !node.deleted && (node.id !== id || !tree.has_more)).reverse();
    for (const node of doomed) await api.remove(`/v1/responses/${node.id}`);
    if (!tree.has_more) return;
  }
}

/** After a deletion under the open tree: shows it again, or the list when its top is gone. @param {string} deleted */
async function reopen(deleted) {
  const tree = state.tree;
  if (!tree) return;
  const parent = tree.data.find((node) => node.id === deleted)?.previous_response_id;
  if (deleted === tree.id) {
    state.tree = null;
    view.replaceChildren(h("p", { class: "muted empty" }, `Deleted ${deleted}.`));
    await loadList();
    return;
  }
  await openTree(tree.id, parent || undefined);
}

/** Exports the chain from the root to `id`. @param {string} id @param {"json" | "md"} format */
async function exportChain(id, format) {
  if (!state.tree) return;
  const nodes = state.tree.data;
  const ids = [...state.tree.path, ...pathTo(nodes, id)];
  const turns = await Promise.all(
    ids.map(async (turn) => {
      if (nodes.find((node) => node.id === turn)?.deleted) return { id: turn };
      try {
        const [response, input] = await Promise.all([api.get(`/v1/responses/${turn}`), api.all(`/v1/responses/${turn}/input_items`, { order: "asc" })]);
        return { id: turn, response, input };
      } catch (err) {
        // A turn above the tree's top that was deleted since.
        if (err instanceof api.ApiError && err.status === 404) return { id: turn };
        throw err;
      }
    }),
  );
  if (format === "json") download(`chain-${id}.json`, "application/json", chainJson(turns));
  else download(`chain-${id}.md`, "text/markdown", chainMarkdown(turns));
}

/** Follows a running response: its card's output grows with each delta, its status changes as it runs. @param {string} id */
function followLive(id) {
  let text = "";
  /** @param {string} status */
  const setStatus = (status) => {
    const card = cardOf(id);
    card?.querySelector("[data-testid=status]")?.replaceWith(statusPill(status));
    card?.classList.toggle("running", status === "queued" || status === "in_progress");
  };
  const onEvent = (/** @type {string} */ event, /** @type {any} */ data) => {
    const output = cardOf(id)?.querySelector("[data-testid=node-output]");
    if (event === "response.created") text = "";
    if (event === "response.output_text.delta") text += data.delta;
    state.liveText.set(id, text);
    if (output) output.textContent = text;
    if (state.selected === id && event === "response.output_text.delta") {
      const live = renderItems([{ type: "message", role: "assistant", content: text }], "detail-output");
      view.querySelector("[data-testid=detail-output]")?.replaceWith(live);
    }
    if (data.response?.status) setStatus(data.response.status);
    if (data.response?.usage) cardOf(id)?.querySelector("[data-testid=node-tokens]")?.replaceChildren(tokens(data.response.usage));
  };
  const signal = state.live.signal;
  api
    .follow(`/v1/responses/${id}`, onEvent, signal)
    .then(() => {
      // Ended: show the stored result if it is the selected turn.
      if (!signal.aborted && state.selected === id) run(() => selectNode(id));
    })
    .catch((err) => {
      if (!signal.aborted) fail(err);
    });
}

// ---- a conversation ----

/** Opens a conversation as its items, oldest first. @param {string} id */
async function openConversation(id) {
  const conversation = await api.get(`/v1/conversations/${id}`);
  state.live.abort();
  state.tree = null;
  const items = h("div", { class: "items", testid: "conversation-items" });
  const more = h("button", { type: "button", class: "quiet", testid: "conversation-more", hidden: true }, "More");
  /** @type {string | undefined} */
  let after;
  const page = async () => {
    const answer = await api.get(`/v1/conversations/${id}/items`, { order: "asc", limit: 20, after });
    items.append(...renderItems(answer.data, "page").childNodes);
    after = answer.last_id;
    more.hidden = !answer.has_more;
  };
  more.addEventListener("click", () => run(page));
  const remove = async () => {
    if (!confirm(`Delete the conversation ${id}?`)) return;
    await api.remove(`/v1/conversations/${id}`);
    view.replaceChildren(h("p", { class: "muted empty" }, `Deleted ${id}.`));
    await loadList();
  };
  const metadata = Object.entries(conversation.metadata || {}).map(([key, value]) => `${key}=${value}`).join(", ");
  view.replaceChildren(
    h("div", { class: "view-head" }, h("h2", {}, "Conversation ", h("code", { testid: "conversation-id" }, id)), h("span", { class: "muted" }, `${time(conversation.created_at)} UTC`), metadata ? h("span", { class: "muted" }, metadata) : null),
    h("div", { class: "actions" }, h("button", { type: "button", class: "danger", testid: "delete-conversation", onclick: () => run(remove) }, "Delete conversation")),
    h("div", { class: "conversation", testid: "conversation" }, items, more),
  );
  await page();
}

// ---- start ----

function start() {
  showWho();
  $("main").hidden = false;
  run(() => loadList());
}

start();
