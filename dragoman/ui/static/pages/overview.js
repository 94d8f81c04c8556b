// Overview: requests, errors, cancellations, spend and overhead over time (/api/stats), and the live feed (/api/feed, SSE).
import { api, loadSession } from "../lib/api.js";
import { timeChart } from "../lib/chart.js";
import { h, mount, fmt, empty, panel, badge, pointClaudeHere, statusCell } from "../lib/dom.js";

const PERIODS = { "24h": "1h", "7d": "6h", "30d": "1d" };
let source = null;

export function leave() {
  if (source) { source.close(); source = null; }
}

// nav.stale(): a later navigation owns the page (app.js); then this render must not open a feed nobody closes.
// The period rides in the address (#/overview/7d), as the Requests filter does: a reload or a shared link keeps it.
export async function render(main, args, nav) {
  const period = Object.hasOwn(PERIODS, args[0]) ? args[0] : "24h";
  const r = await api(`/api/stats?since=${period}&bucket=${PERIODS[period]}`);
  if (nav.stale()) return;
  if (!r.ok) { mount(main, empty("Statistics are not available.", r.message || "")); return; }
  const buckets = r.data.data;
  const xs = buckets.map((b) => b.time);
  const total = (k) => buckets.reduce((s, b) => s + (b[k] || 0), 0);
  const select = h("select", { id: "overview-period" }, Object.keys(PERIODS).map((p) =>
    h("option", { value: p, selected: p === period }, "last " + p)));
  select.addEventListener("change", () => { location.hash = "#/overview/" + select.value; });
  const requests = total("requests");
  const tiles = h("div", { class: "tiles" },
    tile("requests", fmt.int(requests), "tile-requests"),
    tile("errors", fmt.int(total("errors")), "tile-errors"),
    tile("cancelled by clients", fmt.int(total("cancelled")), "tile-cancelled"),
    tile("spend", fmt.usd(total("cost_usd")), "tile-spend"),
    tile("output tokens", fmt.int(total("output_tokens")), "tile-output"));
  const timeFmt = (v) => fmt.time(v);
  const charts = requests === 0
    ? [empty("No requests in this period.", ...pointClaudeHere())]
    : [h("div", { class: "grid2" },
        panel("Requests and errors", timeChart("chart-requests", xs, [
          { label: "requests", values: buckets.map((b) => b.requests) },
          { label: "errors", values: buckets.map((b) => b.errors) },
          { label: "cancelled", values: buckets.map((b) => b.cancelled) }], { fmtTime: timeFmt })),
        panel("Spend (USD)", timeChart("chart-spend", xs, [
          { label: "spend", values: buckets.map((b) => b.cost_usd), format: (v) => fmt.usd(v) }], { fmtTime: timeFmt })),
        panel("Gateway overhead", timeChart("chart-overhead", xs, [
          { label: "p50 ms", values: buckets.map((b) => b.overhead_p50_ms), format: (v) => v.toFixed(2) },
          { label: "p95 ms", values: buckets.map((b) => b.overhead_p95_ms), format: (v) => v.toFixed(2) }],
          { fmtTime: timeFmt })))];
  const feedBody = h("tbody");
  const feedEmpty = h("p", { class: "muted", id: "feed-waiting" }, "Waiting for requests… (new ones appear here as they finish)");
  const feed = panel("Live requests",
    h("div", { class: "scroll" }, h("table", { id: "feed" },
      h("thead", {}, h("tr", {}, ["time (UTC)", "route", "model", "developer", "repo", "status", "error", "in", "out", "cost", "verdict"]
        .map((c) => h("th", {}, c)))), feedBody)), feedEmpty);
  const stopped = h("p", { class: "error", id: "feed-stopped", role: "alert", hidden: true });
  mount(main, h("div", { class: "controls" }, h("h1", {}, "Overview"), select), tiles, ...charts, feed, stopped);
  leave();
  source = new EventSource("/api/feed");
  source.addEventListener("request", (event) => {
    const row = JSON.parse(event.data);
    feedEmpty.hidden = true;
    feedBody.prepend(feedRow(row));
    while (feedBody.children.length > 100) feedBody.lastChild.remove();
  });
  source.addEventListener("error", () => feedClosed(source, stopped));
}

// An EventSource retries a dropped feed by itself; once the gateway refuses it (the session expired, its key was
// revoked) it is CLOSED for good. Say so, and send the user to sign in as every other page does on a 401.
async function feedClosed(closed, stopped) {
  if (closed.readyState !== EventSource.CLOSED || closed !== source) return;
  source = null;
  stopped.textContent = "The live feed stopped: the gateway refused it. Sign in again (or reload) to see new requests.";
  stopped.hidden = false;
  await loadSession().catch(() => null);  // on a 401 this goes to the sign-in page
}

function tile(label, value, id) {
  return h("div", { class: "tile", id }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}

function feedRow(row) {
  const tr = h("tr", { class: "clickable", "data-request-id": row.request_id },
    h("td", {}, fmt.time(row.time)), h("td", {}, fmt.text(row.route)),
    h("td", {}, fmt.text(row.upstream_model || row.requested_model)), h("td", {}, fmt.text(row.developer)),
    h("td", {}, fmt.text(row.repo)), h("td", { "data-col": "status" }, statusCell(row.status, row)),
    h("td", { "data-col": "error_type" }, fmt.text(row.error_type)),
    h("td", { class: "num" }, fmt.int(row.input_tokens)), h("td", { class: "num" }, fmt.int(row.output_tokens)),
    h("td", { class: "num" }, fmt.usd(row.cost_usd)), h("td", {}, badge(row.verdict)));
  tr.addEventListener("click", () => { location.hash = "#/request/" + encodeURIComponent(row.request_id); });
  return tr;
}
