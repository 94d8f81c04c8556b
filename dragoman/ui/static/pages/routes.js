// Routes: the live routes and breakers (/api/routes); correctness scores, demotions/probes (/api/scores) and
// failure clusters (/api/clusters) when the gateway has the correctness loop.
import { api } from "../lib/api.js";
import { h, mount, fmt, table, empty, panel, badge } from "../lib/dom.js";

export async function render(main) {
  const [routes, scores, clusters] = await Promise.all([api("/api/routes"), api("/api/scores?since=24h"), api("/api/clusters?since=24h")]);
  mount(main, h("h1", {}, "Routes"), routesPanel(routes), scoresPanel(scores), eventsPanel(scores), clustersPanel(clusters));
}

function routesPanel(r) {
  if (!r.ok) return panel("Routes and breakers", empty("Routes are not available.", r.message || ""));
  const rows = r.data.data.map((x) => ({ ...x, state: x.breaker ? x.breaker.state : null,
    requests: x.last_hour.requests, errors: x.last_hour.errors, cancelled: x.last_hour.cancelled }));
  return panel("Routes and breakers", table(rows, [["name", "route", null, (v) => v + (v === r.data.default_route ? " (default)" : "")],
    ["provider", "provider"], ["api", "api"], ["model", "model"], ["host", "host"],
    ["fallbacks", "fallbacks", null, (v) => (v.length ? v.join(" → ") : "—")],
    ["state", "breaker", null, badge], ["requests", "requests (1h)", "int"], ["errors", "errors (1h)", "int"],
    ["cancelled", "cancelled (1h)", "int"]],
    { id: "routes-table", rowKey: (x) => x.name }),
    h("p", { class: "muted small" }, "A breaker opens after a route's failures in a row and lets one probe through after its cooldown."));
}

const NO_LOOP = "Correctness scores appear once the gateway assesses answers (the correctness loop): every call's verdict is scored per route, model and turn shape.";

function scoresPanel(r) {
  if (r.status === 404) return panel("Correctness scores", empty("No scores on this gateway.", NO_LOOP));
  if (!r.ok) return panel("Correctness scores", empty("Scores are not available.", r.message || ""));
  if (r.data.data.length === 0) return panel("Correctness scores", empty("No scored calls in the last 24h.", "Scores fill in as requests with tool use pass through the gateway."));
  return panel("Correctness scores", table(r.data.data, [["route", "route"], ["model", "model"], ["shape", "shape"],
    ["prompt_variant", "variant"], ["calls", "calls", "int"], ["passed", "passed", "int"],
    ["score", "score", "num", (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%")],
    ["state", "state", null, badge], ["weight", "weight", "num", (v) => fmt.text(v)]], { id: "scores-table" }));
}

function eventsPanel(r) {
  if (!r.ok || !r.data.events) return null;
  if (r.data.events.length === 0) return panel("Demotions and probes", empty("No demotions in the last 24h.", "When a route's score for a shape drops, the loop demotes it and probes it later; those events show here."));
  return panel("Demotions and probes", table(r.data.events, [["time", "time", null, fmt.time], ["kind", "event", null, badge],
    ["route", "route"], ["shape", "shape"], ["score", "score", "num", (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%")],
    ["calls", "calls", "int"], ["detail", "detail"]], { id: "events-table" }));
}

function clustersPanel(r) {
  if (r.status === 404) return panel("Failure clusters", empty("No failure clusters on this gateway.", NO_LOOP));
  if (!r.ok) return panel("Failure clusters", empty("Clusters are not available.", r.message || ""));
  if (r.data.data.length === 0) return panel("Failure clusters", empty("No failures in the last 24h.", "Failed verdicts group here by kind, tool, route and model, with example requests."));
  return panel("Failure clusters", cutNotice(r.data), table(r.data.data, [["kind", "kind"], ["tool", "tool"], ["route", "route"], ["model", "model"],
    ["count", "count", "int"], ["first_seen", "first", null, fmt.time], ["last_seen", "last", null, fmt.time],
    ["examples", "examples", null, (v) => h("span", {}, (v || []).slice(0, 3).map((id) => [h("a", { href: "#/request/" + encodeURIComponent(id) }, id), " "]))]],
    { id: "clusters-table" }));
}

// The API reads at most so many failing records, the newest: past that the counts cover less than the 24h the
// panel names, and only `covered_since` says from when.
function cutNotice(data) {
  if (!data.truncated) return null;
  return h("p", { class: "error", id: "clusters-truncated", role: "status" },
    `Too many failures to count them all: these clusters count only the newest, from ${fmt.time(data.covered_since)} (UTC) on, not the whole 24h.`);
}
