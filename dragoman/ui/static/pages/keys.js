// Keys (admin only): virtual keys from /api/keys — create (the key is shown once), revoke, rotate.
import { api, isAdmin } from "../lib/api.js";
import { h, mount, fmt, table, empty, panel } from "../lib/dom.js";

export async function render(main) {
  if (!isAdmin()) { mount(main, h("h1", {}, "Keys"), empty("Keys are for admins.", "Sign in with an admin key to create, revoke or rotate keys.")); return; }
  const r = await api("/api/keys");
  if (r.status === 404) {
    mount(main, h("h1", {}, "Keys"), empty("No virtual keys on this gateway.",
      "This gateway authenticates with keys from its config (auth.keys, DRAGOMAN_API_KEYS). Virtual keys — created, revoked and rotated here, each with a developer, team, role, allowed models and budget — come with the key store."));
    return;
  }
  if (!r.ok) { mount(main, h("h1", {}, "Keys"), empty("Keys are not available.", r.message || "")); return; }
  const shownOnce = h("div", { id: "new-key" });
  const now = Date.now() / 1000;
  const rows = r.data.data.map((key) => ({ ...key, ...status(key, now) }));
  mount(main, h("h1", {}, "Keys"), panel("Create a key", createForm(main, shownOnce), shownOnce),
    panel("Keys", rows.length === 0 ? empty("No keys yet.", "Create one above and give it to a developer: ANTHROPIC_API_KEY=<key> with ANTHROPIC_BASE_URL pointing here.")
      : table(rows, [["id", "id"], ["prefix", "prefix", null, (v) => h("code", {}, v)], ["developer", "developer"], ["team", "team"],
          ["role", "role"], ["models", "models", null, (v) => (v && v.length ? v.join(", ") : "all")],
          ["budget", "budget", null, (v) => (v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v))],
          ["created", "created", null, (v) => (typeof v === "number" ? fmt.time(v) : fmt.text(v))],
          ["status", "status (UTC)"],
          ["id", "", null, (id, row) => actions(main, shownOnce, row)]], { id: "keys-table", rowKey: (x) => x.id })));
}

// What the key does now ({status, live}), from revoked_at, expires_at and rotated_to, as the gateway judges it
// (VirtualKey.refusal). A rotated key keeps working until its grace ends (expires_at): it is "retiring", not
// revoked, and it can still be revoked to cut the grace short.
function status(key, now) {
  const past = (t) => typeof t === "number" && t <= now;
  const to = key.rotated_to ? ` (rotated to ${key.rotated_to})` : "";
  if (past(key.revoked_at)) return { status: "revoked " + fmt.time(key.revoked_at), live: false };
  if (past(key.expires_at)) return { status: (key.rotated_to ? "retired " : "expired ") + fmt.time(key.expires_at) + to, live: false };
  if (typeof key.expires_at === "number") {
    return { status: (key.rotated_to ? "retiring at " : "active, expires ") + fmt.time(key.expires_at) + to, live: true };
  }
  return { status: "active", live: true };
}

function createForm(main, shownOnce) {
  const field = (name, label, attrs = {}) => h("label", {}, label, h("input", { name, ...attrs }));
  const role = h("select", { name: "role" }, ["user", "viewer", "admin"].map((x) => h("option", { value: x }, x)));
  const form = h("form", { class: "inline", id: "create-key" }, field("developer", "developer", { required: true }), field("team", "team"),
    h("label", {}, "role", role), field("models", "models (comma separated, empty: all)"),
    field("budget", "budget (USD per day, week or month: 50/month)", { placeholder: "50/month", title: "USD per period, like 50/month, 20/day or 100/week" }), h("button", { type: "submit", class: "primary" }, "Create"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = form.elements;
    const body = { developer: f.developer.value.trim(), role: f.role.value };
    if (f.team.value.trim()) body.team = f.team.value.trim();
    const models = f.models.value.split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) body.models = models;
    if (f.budget.value.trim()) body.budget = f.budget.value.trim();  // as the API and the CLI take it: "50/month"
    const r = await api("/api/keys", { method: "POST", body });
    await render(main);
    showKey(document.getElementById("new-key"), r, "Created");
  });
  return form;
}

function showKey(box, r, what) {
  if (!r.ok) { mount(box, h("p", { class: "error", role: "alert" }, `${what}: refused: ${r.message || r.status}`)); return; }
  mount(box, h("div", { class: "shown-once" }, `${what} ${r.data.id}. Copy the key now; it is not shown again: `,
    h("code", { id: "new-key-value" }, r.data.key)));
}

// A live key can be revoked or rotated; one already rotated only revoked (the API refuses a second rotation);
// a revoked or expired one neither.
function actions(main, shownOnce, key) {
  const id = key.id;
  if (!key.live) return "";
  const revoke = h("button", { type: "button", class: "danger revoke", "data-id": id }, "Revoke");
  revoke.addEventListener("click", async () => {
    if (!confirm(`Revoke ${id}? Requests with it are refused within a second.`)) return;
    const r = await api(`/api/keys/${encodeURIComponent(id)}/revoke`, { method: "POST", body: {} });
    await render(main);
    if (!r.ok) showKey(document.getElementById("new-key"), r, "Revoke");
  });
  const rotate = h("button", { type: "button", class: "rotate", "data-id": id }, "Rotate");
  rotate.addEventListener("click", async () => {
    if (!confirm(`Rotate ${id}? A new key replaces it.`)) return;
    const r = await api(`/api/keys/${encodeURIComponent(id)}/rotate`, { method: "POST", body: {} });
    await render(main);
    showKey(document.getElementById("new-key"), r, "Rotated");
  });
  return key.rotated_to ? revoke : h("span", {}, revoke, " ", rotate);
}
