// Requests: the newest requests (/api/requests), filtered; a row opens its detail.
import { api } from "../lib/api.js";
import { h, mount, table, empty, badge, fmt, pointClaudeHere, statusCell } from "../lib/dom.js";

const FILTERS = ["developer", "repo", "route", "status"];

export async function render(main, args) {
  const query = new URLSearchParams(args[0] || "");
  const params = new URLSearchParams({ limit: "200" });
  for (const f of FILTERS) if (query.get(f)) params.set(f, query.get(f));
  const r = await api("/api/requests?" + params);
  const form = h("form", { class: "inline", id: "requests-filter" }, FILTERS.map((f) =>
    h("label", {}, f, h("input", { name: f, value: query.get(f) || "", size: 12 }))), h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of FILTERS) { const v = form.elements[f].value.trim(); if (v) q.set(f, v); }
    location.hash = "#/requests/" + encodeURIComponent(q.toString());
  });
  if (!r.ok) { mount(main, h("h1", {}, "Requests"), form, empty("Requests are not available.", r.message || "")); return; }
  const rows = r.data.data;
  mount(main, h("h1", {}, "Requests"), form, rows.length === 0
    ? empty("No requests match.", ...pointClaudeHere())
    : table(rows, [["time", "time (UTC)", null, fmt.time], ["route", "route"], ["upstream_model", "model"],
        ["developer", "developer"], ["repo", "repo"], ["status", "status", null, statusCell], ["error_type", "error"],
        ["input_tokens", "in", "int"],
        ["output_tokens", "out", "int"], ["cost_usd", "cost", "usd"], ["verdict", "verdict", null, badge],
        ["request_id", "request id"]],
      { id: "requests-table", rowKey: (x) => x.request_id,
        // The list's filter rides along in the detail's hash, so "← all requests" comes back to this list.
        onRow: (x) => { location.hash = "#/request/" + encodeURIComponent(x.request_id) + (args[0] ? "/" + encodeURIComponent(args[0]) : ""); } }));
}
