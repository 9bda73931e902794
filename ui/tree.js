// @ts-check
// A chain of responses as a tree: a turn with one continuation stays in its column, a branch point splits into
// side-by-side columns, each marked "branch i of n"; the path from the root to the selected turn is highlighted.

import { h, statusPill, tokens } from "./render.js";

/**
 * A node of GET /v1/responses/{id}/tree.
 * @typedef {{id: string, previous_response_id: string | null, created_at: number, completed_at: number | null,
 *   status: string | null, model: string | null, background: boolean, usage: any, preview: string | null,
 *   output_preview: string | null, children: number, deleted: boolean}} TreeNode
 */

/** A short form of an id: its prefix and last 8 characters. @param {string} id */
export function shortId(id) {
  const cut = id.indexOf("_") + 1;
  return id.length > cut + 12 ? `${id.slice(0, cut)}…${id.slice(-8)}` : id;
}

/**
 * The loaded children of each node, in the order the tree lists them (by creation).
 * @param {TreeNode[]} nodes
 * @returns {Map<string, TreeNode[]>}
 */
export function childrenOf(nodes) {
  /** @type {Map<string, TreeNode[]>} */
  const children = new Map();
  for (const node of nodes) {
    if (!node.previous_response_id) continue;
    const siblings = children.get(node.previous_response_id) || [];
    siblings.push(node);
    children.set(node.previous_response_id, siblings);
  }
  return children;
}

/**
 * The ids from the tree's top down to `id`, following parent links among the loaded nodes.
 * @param {TreeNode[]} nodes @param {string} id
 * @returns {string[]}
 */
export function pathTo(nodes, id) {
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const path = [];
  for (let node = byId.get(id); node; node = byId.get(node.previous_response_id || "")) path.unshift(node.id);
  return path;
}

/**
 * One turn's card.
 * @param {TreeNode} node @param {(id: string) => void} onSelect
 */
function card(node, onSelect) {
  const classes = ["node", node.deleted ? "deleted" : "", node.status === "queued" || node.status === "in_progress" ? "running" : ""];
  const head = h(
    "div",
    { class: "node-head" },
    h("code", { class: "node-id", title: node.id }, shortId(node.id)),
    node.deleted ? h("span", { class: "pill status-deleted", testid: "status" }, "deleted") : statusPill(node.status),
  );
  const body = node.deleted
    ? [h("div", { class: "node-gone" }, "this turn was deleted")]
    : [
        h("div", { class: "node-in", testid: "node-preview" }, node.preview || ""),
        h("div", { class: "node-out", testid: "node-output" }, node.output_preview || ""),
        h("div", { class: "node-meta" }, h("span", {}, node.model || ""), h("span", { testid: "node-tokens" }, tokens(node.usage))),
      ];
  const branches = node.children > 1 ? h("div", { class: "node-fork" }, `▾ ${node.children} branches`) : null;
  return h(
    "button",
    { type: "button", class: classes.join(" ").trim(), testid: "node", "data-id": node.id, onclick: () => onSelect(node.id) },
    head,
    ...body,
    branches,
  );
}

/**
 * The tree under `top` as nested columns.
 * @param {TreeNode[]} nodes the nodes of the tree, `top` first
 * @param {(id: string) => void} onSelect
 * @returns {HTMLElement}
 */
export function renderTree(nodes, onSelect) {
  const children = childrenOf(nodes);
  /** @param {TreeNode} first @returns {HTMLElement} */
  const column = (first) => {
    const sequence = h("div", { class: "sequence" });
    /** @type {TreeNode | undefined} */
    let node = first;
    while (node) {
      sequence.append(card(node, onSelect));
      /** @type {TreeNode[]} */
      const next = children.get(node.id) || [];
      const unloaded = node.children - next.length;
      if (next.length > 1) {
        const branches = next.map((child, i) =>
          h("div", { class: "branch", testid: "branch" }, h("div", { class: "branch-marker" }, `branch ${i + 1} of ${next.length}`), column(child)),
        );
        sequence.append(h("div", { class: "branches", testid: "branches" }, ...branches));
      }
      if (unloaded > 0) sequence.append(h("div", { class: "muted more-nodes" }, `${unloaded} more not loaded`));
      node = next.length === 1 ? next[0] : undefined;
    }
    return sequence;
  };
  return nodes.length ? column(nodes[0]) : h("div", { class: "muted" }, "empty");
}

/**
 * Marks the selected node and the path to it.
 * @param {HTMLElement} container @param {string[]} path @param {string} selected
 */
export function highlight(container, path, selected) {
  for (const element of container.querySelectorAll("[data-testid=node]")) {
    const id = /** @type {HTMLElement} */ (element).dataset.id || "";
    element.classList.toggle("on-path", path.includes(id));
    element.classList.toggle("selected", id === selected);
  }
}
