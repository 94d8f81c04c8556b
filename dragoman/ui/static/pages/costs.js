// Costs: spend by developer, repo, team, model, route or key over a period (/api/costs), chart + table + CSV,
// and budgets (/api/budgets) when the gateway has them.
import { api } from "../lib/api.js";
import { barChart } from "../lib/chart.js";
import { h, mount, fmt, table, empty, panel, pointClaudeHere } from "../lib/dom.js";

const GROUPS = ["developer", "repo", "team", "model", "route", "key"];
const PERIODS = ["24h", "7d", "30d", "90d"];

export async function render(main, args) {
  const by = GROUPS.includes(args[0]) ? args[0] : "developer";
  // 7 days by default: on a million records in SQLite a month's roll-up takes about a second (bench/RESULTS.md).
  const since = PERIODS.includes(args[1]) ? args[1] : "7d";
  const [r, budgets] = await Promise.all([api(`/api/costs?by=${by}&since=${since}`), api("/api/budgets")]);
  const pick = (id, options, value) => {
    const s = h("select", { id }, options.map((o) => h("option", { value: o, selected: o === value }, o)));
    s.addEventListener("change", () => {
      location.hash = `#/costs/${document.getElementById("costs-by").value}/${document.getElementById("costs-since").value}`;
    });
    return s;
  };
  const csv = h("a", { id: "costs-csv", href: `/api/costs.csv?by=${by}&since=${since}`, download: `dragoman-costs-${by}-${since}.csv` }, "Download CSV");
  const controls = h("div", { class: "controls" }, h("h1", {}, "Costs"),
    h("label", { for: "costs-by" }, "by"), pick("costs-by", GROUPS, by),
    h("label", { for: "costs-since" }, "over the last"), pick("costs-since", PERIODS, since), csv);
  if (!r.ok) { mount(main, controls, empty("Costs are not available.", r.message || "")); return; }
  const rows = r.data.data;
  const body = rows.length === 0
    ? [empty("No requests in this period.", ...pointClaudeHere())]
    : [panel(`Spend by ${by}`, barChart("costs-chart", rows.map((x) => x[by]), rows.map((x) => x.cost_usd),
        { label: "cost_usd", format: (v) => fmt.usd(v) })),
       panel("Table", table(rows, [[by, by, null, (v) => fmt.text(v)], ["requests", "requests", "int"],
         ["errors", "errors", "int"], ["cancelled", "cancelled", "int"], ["input_tokens", "input", "int"], ["output_tokens", "output", "int"],
         ["cache_read_tokens", "cache read", "int"], ["cost_usd", "cost", "usd"], ["unpriced", "unpriced", "int"]],
         { id: "costs-table", rowKey: (x) => x[by] ?? "" }))];
  mount(main, controls, ...body, budgetPanel(budgets));
}

function budgetPanel(r) {
  if (r.status === 404) {
    return panel("Budgets", empty("No budgets on this gateway.",
      "Set governance.budgets in the config to cap spend per key, developer, team or in all; they show here with how close each is to its cap."));
  }
  if (!r.ok) return panel("Budgets", empty("Budgets are not available.", r.message || ""));
  const rows = r.data.data.map((b) => ({ ...b, used: b.limit_usd ? b.spent_usd / b.limit_usd : null }));
  if (rows.length === 0) return panel("Budgets", empty("No budgets configured.", "Set governance.budgets in the config."));
  return panel("Budgets", table(rows, [["scope", "scope"], ["period", "period"], ["spent_usd", "spent", "usd"],
    ["limit_usd", "cap", "usd"], ["used", "used", "num", (v) => (v === null ? "—" : Math.round(v * 100) + "%")],
    ["resets_at", "resets", null, (v) => (typeof v === "number" ? fmt.time(v) : fmt.text(v))]], { id: "budgets-table" }));
}
