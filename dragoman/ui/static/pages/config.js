// Config: the live version and its history with scores (/api/versions), a diff between two versions' text
// (/api/versions/<v>), and rollback (admin only, confirmed) → POST /api/rollback.
import { api, isAdmin } from "../lib/api.js";
import { lineDiff } from "../lib/diff.js";
import { h, mount, fmt, table, empty, panel } from "../lib/dom.js";

export async function render(main) {
  const r = await api("/api/versions");
  if (r.status === 404) {
    mount(main, h("h1", {}, "Config"), empty("No config history on this gateway.",
      "Config versions appear when the gateway records each config it applies (hot reloads included), with a correctness score per version and rollback."));
    return;
  }
  if (!r.ok) { mount(main, h("h1", {}, "Config"), empty("Config versions are not available.", r.message || "")); return; }
  const versions = r.data.data;
  const diffBox = h("div", { id: "config-diff" });
  const pick = (id, chosen) => h("select", { id }, versions.map((v) => h("option", { value: v.version, selected: v.version === chosen }, v.version + (v.live ? " (live)" : ""))));
  const older = pick("diff-from", versions[1] ? versions[1].version : versions[0]?.version);
  const newer = pick("diff-to", r.data.live);
  const show = h("button", { type: "button", id: "show-diff" }, "Show diff");
  show.addEventListener("click", () => showDiff(diffBox, older.value, newer.value));
  const rows = versions.map((v) => ({ ...v }));
  const columns = [["version", "version", null, (v, row) => v + (row.live ? " (live)" : "")], ["time", "applied", null, fmt.time],
    ["applied_by", "by"], ["calls", "calls", "int"], ["passed", "passed", "int"],
    ["score", "score", "num", (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%")],
    ["rolled_back_from", "rolled back from"]];
  if (isAdmin()) columns.push(["version", "", null, (v, row) => row.live ? "" : rollbackButton(main, v)]);
  mount(main, h("h1", {}, "Config"),
    h("p", {}, "Live version: ", h("strong", { id: "live-version" }, fmt.text(r.data.live))),
    panel("History", versions.length === 0 ? empty("No versions recorded yet.") : table(rows, columns, { id: "versions-table", rowKey: (x) => x.version })),
    versions.length > 1 ? panel("Diff", h("div", { class: "controls" }, older, "→", newer, show), diffBox) : null,
    confirmDialog());
}

async function showDiff(box, from, to) {
  const [a, b] = await Promise.all([api("/api/versions/" + encodeURIComponent(from)), api("/api/versions/" + encodeURIComponent(to))]);
  if (!a.ok || !b.ok) { mount(box, empty("The versions' text could not be read.", (a.message || b.message || ""))); return; }
  const lines = lineDiff(a.data.content || "", b.data.content || "");
  const changed = lines.some(([kind]) => kind !== "same");
  mount(box, changed ? h("div", { class: "diff" }, lines.map(([kind, text]) =>
    h("span", { class: kind }, (kind === "add" ? "+ " : kind === "del" ? "- " : "  ") + text)))
    : h("p", { class: "muted" }, "The two versions' text is the same."));
}

function confirmDialog() {
  return h("dialog", { id: "rollback-dialog" },
    h("form", { method: "dialog" },
      h("p", { id: "rollback-question" }), h("div", { class: "controls" },
        h("button", { value: "cancel", type: "submit" }, "Cancel"),
        h("button", { value: "confirm", type: "submit", class: "danger", id: "rollback-confirm" }, "Roll back"))));
}

function rollbackButton(main, version) {
  const button = h("button", { type: "button", class: "danger rollback", "data-version": version }, "Roll back to this");
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    const dialog = document.getElementById("rollback-dialog");
    document.getElementById("rollback-question").textContent =
      `Make ${version} the live config? Every worker switches to it; requests in flight finish on the old one.`;
    dialog.returnValue = "";
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "confirm") return;
      const r = await api("/api/rollback", { method: "POST", body: { version } });
      if (!r.ok) { alertIn(main, "Rollback refused: " + (r.message || r.status)); return; }
      await render(main);
    }, { once: true });
    dialog.showModal();
  });
  return button;
}

function alertIn(main, text) {
  main.prepend(h("p", { class: "error", role: "alert" }, text));
}
