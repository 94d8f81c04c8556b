// Building the page from data: every value goes in as text (textContent), never as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  // Flattened to any depth: a child may be an array of arrays (ids.map(id => [link, " "])); one level left the
  // inner arrays to String(), and an anchor's string is its href: links came out as text.
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function mount(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter(Boolean));
  return parent;
}

export const fmt = {
  usd(v) { return v === null || v === undefined ? "—" : "$" + Number(v).toFixed(Math.abs(v) < 1 ? 4 : 2); },
  int(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"); },
  ms(v) { return v === null || v === undefined ? "—" : Number(v).toFixed(2) + " ms"; },
  time(epoch) { return epoch ? new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) : "—"; },
  text(v) { return v === null || v === undefined || v === "" ? "—" : String(v); },
};

// A table: columns are [key, label, kind] with kind "num" (right-aligned) or a formatter from fmt.
export function table(rows, columns, { id, onRow, rowKey } = {}) {
  const head = h("tr", {}, columns.map(([, label, kind]) => h("th", { class: kind ? "num" : null }, label)));
  const body = rows.map((row) => {
    const tr = h("tr", { class: onRow ? "clickable" : null, "data-key": rowKey ? rowKey(row) : null },
      columns.map(([key, , kind, render]) => {
        const value = row[key];
        const shown = render ? render(value, row) : kind && fmt[kind] ? fmt[kind](value) : fmt.text(value);
        return h("td", { class: kind ? "num" : null, "data-col": key }, shown);
      }));
    if (onRow) tr.addEventListener("click", () => onRow(row));
    return tr;
  });
  return h("div", { class: "scroll" }, h("table", { id }, h("thead", {}, head), h("tbody", {}, body)));
}

// Whether the client cancelled a record's request, as the store counts cancellations (CANCELLED_SQL in
// observe/stores.py): 499 before the first byte, or a stream it stopped reading (200), both client_disconnected.
export function cancelled(row) {
  return row.status === 499 || row.error_type === "client_disconnected";
}

// Whether a record failed, as the store counts errors (FAILED_SQL in observe/stores.py): status 400 or more, or an
// error after the first byte (a broken stream is recorded 200 with error_type stream_error), but not a cancellation.
export function failed(row) {
  return (row.status >= 400 || Boolean(row.error_type)) && !cancelled(row);
}

// A record's status cell: the code, marked failed, cancelled (in words too: not by colour alone) or ok.
export function statusCell(status, row) {
  if (cancelled(row)) {
    return h("span", { class: "status-cancelled", title: "the client cancelled this request" },
      fmt.text(status), " ", h("span", { class: "badge cancelled" }, "cancelled"));
  }
  return h("span", { class: failed(row) ? "status-bad" : "status-ok" }, fmt.text(status));
}

export function empty(title, ...lines) {
  return h("div", { class: "empty" }, h("strong", {}, title), ...lines.map((line) =>
    typeof line === "string" ? h("p", {}, line) : line));
}

export function badge(value) {
  return value ? h("span", { class: "badge " + value }, value) : "—";
}

export function panel(title, ...children) {
  return h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, title)), ...children);
}

// What to do when the gateway has seen no traffic yet.
export function pointClaudeHere() {
  const base = location.origin;
  return [
    "Point Claude Code at this gateway and the requests appear here:",
    h("pre", {}, `dragoman claude            # starts Claude Code through the gateway\n# or, by hand:\nANTHROPIC_BASE_URL=${base} claude`),
  ];
}
