// @ts-check
// Small DOM helpers and the rendering of items (messages, tool calls and their outputs, reasoning) and usage, shared
// by the tree's detail pane and the conversation view.

/**
 * An element with attributes (`class`, `data-*`, `testid` for `data-testid`, `on*` listeners) and children.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "testid") element.dataset.testid = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

/** A Unix time in seconds as `YYYY-MM-DD HH:MM:SS` UTC. @param {number | null | undefined} seconds */
export function time(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

/** A status as a coloured pill. @param {string | null} status */
export function statusPill(status) {
  return h("span", { class: `pill status-${status || "deleted"}`, testid: "status" }, status || "deleted");
}

/**
 * A usage object as `N in · M out`.
 * @param {{input_tokens: number, output_tokens: number} | null | undefined} usage
 */
export function tokens(usage) {
  return usage ? `${usage.input_tokens} in · ${usage.output_tokens} out` : "–";
}

/** The text of a message's content (a string or parts). @param {any} content @returns {string} */
export function messageText(content) {
  if (typeof content === "string") return content;
  return (content || [])
    .map((/** @type {any} */ part) => {
      if (typeof part.text === "string") return part.text;
      if (part.type === "refusal") return `[refusal] ${part.refusal}`;
      if (part.type === "input_image") return "[image]";
      if (part.type === "input_file") return `[file ${part.filename || part.file_id || ""}]`.trim();
      return `[${part.type}]`;
    })
    .join("\n");
}

/** The texts of a reasoning item: its summary, else its content. @param {any} item @returns {string} */
export function reasoningText(item) {
  const parts = item.summary?.length ? item.summary : item.content || [];
  return parts.map((/** @type {any} */ part) => part.text).join("\n");
}

/**
 * One item, by type.
 * @param {any} item
 * @returns {HTMLElement}
 */
export function renderItem(item) {
  const box = (/** @type {string} */ kind, /** @type {string} */ label, /** @type {Node[]} */ ...body) =>
    h("div", { class: `item item-${kind}`, testid: "item", "data-type": item.type }, h("div", { class: "item-label" }, label), ...body);
  switch (item.type) {
    case "message":
      return box(item.role, item.role, h("div", { class: "item-text" }, messageText(item.content)));
    case "function_call":
      return box("tool", `function_call · ${item.name} · ${item.call_id}`, h("pre", {}, item.arguments));
    case "function_call_output":
      return box("tool", `function_call_output · ${item.call_id}`, h("pre", {}, typeof item.output === "string" ? item.output : JSON.stringify(item.output, null, 2)));
    case "reasoning":
      return box("reasoning", "reasoning", h("div", { class: "item-text" }, reasoningText(item) || "(encrypted)"));
    case "compaction":
      return box("other", "compaction", h("div", { class: "item-text muted" }, "earlier context, compacted"));
    default:
      return box("other", item.type || "item", h("pre", {}, JSON.stringify(item, null, 2)));
  }
}

/** A list of items, or a placeholder when there are none. @param {any[]} items @param {string} testid */
export function renderItems(items, testid) {
  if (!items.length) return h("div", { class: "muted", testid }, "none");
  return h("div", { class: "items", testid }, ...items.map(renderItem));
}
