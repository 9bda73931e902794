// @ts-check
// Export of a chain — the turns from its root to a chosen turn, each with its input and output items — as JSON or
// Markdown, built in the browser and offered as a download.

import { messageText, reasoningText, time, tokens } from "./render.js";

/**
 * A turn of an exported chain: the stored response and its input items, or just the id of a deleted turn.
 * @typedef {{id: string, response?: any, input?: any[]}} Turn
 */

/** The chain as a JSON document. @param {Turn[]} turns @returns {string} */
export function chainJson(turns) {
  const exported = turns.map(({ id, response, input }) =>
    response
      ? {
          id,
          previous_response_id: response.previous_response_id,
          created_at: response.created_at,
          completed_at: response.completed_at,
          model: response.model,
          status: response.status,
          instructions: response.instructions,
          usage: response.usage,
          input,
          output: response.output,
        }
      : { id, deleted: true },
  );
  return `${JSON.stringify({ object: "chain", id: turns[turns.length - 1]?.id, turns: exported }, null, 2)}\n`;
}

/** One item as Markdown. @param {any} item @returns {string} */
function itemMarkdown(item) {
  switch (item.type) {
    case "message":
      return `**${item.role}**\n\n${messageText(item.content)}`;
    case "function_call":
      return `**function_call** \`${item.name}\` (${item.call_id})\n\n\`\`\`json\n${item.arguments}\n\`\`\``;
    case "function_call_output": {
      const output = typeof item.output === "string" ? item.output : JSON.stringify(item.output);
      return `**function_call_output** (${item.call_id})\n\n\`\`\`\n${output}\n\`\`\``;
    }
    case "reasoning":
      return `**reasoning**\n\n${reasoningText(item)}`;
    default:
      return `**${item.type}**\n\n\`\`\`json\n${JSON.stringify(item)}\n\`\`\``;
  }
}

/** The chain as a Markdown transcript. @param {Turn[]} turns @returns {string} */
export function chainMarkdown(turns) {
  const sections = turns.map(({ id, response, input }, i) => {
    const title = `## Turn ${i + 1} · ${id}`;
    if (!response) return `${title}\n\n(deleted)`;
    const facts = `${response.model} · ${response.status} · ${time(response.created_at)} UTC · ${tokens(response.usage)}`;
    const items = [...(input || []), ...response.output].map(itemMarkdown);
    return [title, facts, ...items].join("\n\n");
  });
  return `# Chain ending at ${turns[turns.length - 1]?.id}\n\n${sections.join("\n\n")}\n`;
}

/** Offers `text` as a file download. @param {string} name @param {string} type @param {string} text */
export function download(name, type, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
