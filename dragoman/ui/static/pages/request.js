// Request detail: everything in one audit record (/api/requests?request_id=…), as stored (redacted at write).
import { api } from "../lib/api.js";
import { h, mount, fmt, table, empty, panel, badge, statusCell } from "../lib/dom.js";

const GROUPS = [
  ["Who", ["request_id", "time_iso", "key_id", "developer", "team", "repo", "session"]],
  ["Routing", ["requested_model", "policy", "branch", "route", "provider", "upstream_model", "input_estimate", "config_version", "prompt_variant", "shape"]],
  ["Answer", ["status", "error_type", "stream", "stream_events", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens", "cost_usd"]],
  ["Timing", ["latency_total_ms", "ttfb_ms", "upstream_ms", "overhead_ms"]],
  ["Verdict", ["verdict", "verdict_kinds", "verdict_detail", "tool_calls", "next_turn", "judge", "loop_events"]],
];
const SHOWN = new Set(["id", "time", "candidates", "notes", ...GROUPS.flatMap(([, keys]) => keys)]);

export async function render(main, args) {
  const id = args[0] || "";
  const r = await api("/api/requests?request_id=" + encodeURIComponent(id) + "&limit=1");
  const list = args[1] ? "#/requests/" + encodeURIComponent(args[1]) : "#/requests";  // the filtered list it came from
  const back = h("a", { href: list, id: "back-to-requests" }, "← all requests");
  if (!r.ok) { mount(main, back, empty("This request could not be read.", r.message || "")); return; }
  const record = r.data.data[0];
  if (!record) {
    mount(main, back, empty(`No request ${id} in the audit log.`, "It may not be written yet (records are written within a second), or it is older than the log keeps."));
    return;
  }
  const extra = Object.keys(record).filter((k) => !SHOWN.has(k));  // fields added later still show
  mount(main, back, h("h1", {}, "Request ", h("code", {}, record.request_id)),
    h("div", { class: "grid2" }, ...GROUPS.map(([title, keys]) => panel(title, fields(record, keys))),
      extra.length ? panel("More", fields(record, extra)) : null),
    panel("Candidates tried", record.candidates.length === 0 ? h("p", { class: "muted" }, "None: the request ended before any upstream was tried.")
      : table(record.candidates, [["route", "route"], ["upstream", "upstream"], ["model", "model"], ["outcome", "outcome"],
          ["status", "status"], ["error_type", "error"], ["latency_ms", "latency", "ms"]], { id: "candidates-table" })),
    panel("Translation notes", record.notes.length === 0 ? h("p", { class: "muted" }, "No notes: nothing was dropped or changed in translation.")
      : h("ul", { id: "notes" }, record.notes.map((n) => h("li", {}, n)))),
    bodies(record));
}

function fields(record, keys) {
  return h("dl", { class: "fields" }, keys.flatMap((k) => [h("dt", {}, k), h("dd", { "data-field": k }, shown(k, record[k], record))]));
}

function shown(key, value, record) {
  if (key === "status") return statusCell(value, record);  // ok, failed or cancelled, as in the list
  if (key === "verdict") return badge(value);
  if (key === "cost_usd") return fmt.usd(value);
  if (key.endsWith("_ms")) return fmt.ms(value);
  if (Array.isArray(value)) return value.length ? value.join(", ") : "—";
  if (value !== null && typeof value === "object") return h("pre", { class: "body" }, JSON.stringify(value, null, 2));
  return fmt.text(value);
}

function bodies(record) {
  const captured = ["request_body", "response_body"].filter((k) => record[k]);
  if (captured.length === 0) return null;
  return panel("Bodies (redacted)", ...captured.map((k) => [h("h3", {}, k), h("pre", { class: "body" }, String(record[k]))]));
}
