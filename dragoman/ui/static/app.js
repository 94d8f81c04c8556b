// The dashboard shell: sign-in state, navigation by hash (#/costs, #/request/<id>, …), one page at a time.
import { loadSession, session, api } from "./lib/api.js";
import { h, mount } from "./lib/dom.js";
import * as overview from "./pages/overview.js";
import * as costs from "./pages/costs.js";
import * as requests from "./pages/requests.js";
import * as request from "./pages/request.js";
import * as routes from "./pages/routes.js";
import * as config from "./pages/config.js";
import * as keys from "./pages/keys.js";

const PAGES = { overview, costs, requests, request, routes, config, keys };
let current = null;

async function show() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const page = PAGES[name] || overview;
  if (current && current.leave) current.leave();
  current = page;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === "#/" + (name === "request" ? "requests" : name));
  }
  const main = document.getElementById("main");
  mount(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await page.render(main, rest.map(decodeURIComponent));
    main.setAttribute("data-page", name);
  } catch (err) {
    if (String(err.message) !== "signed out") {
      mount(main, h("div", { class: "empty error" }, "This page could not load: " + err.message));
    }
  }
}

async function start() {
  await loadSession();
  document.body.classList.toggle("viewer", session.role !== "admin");
  document.getElementById("who").textContent = `${session.key_id} (${session.role})`;
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/ui/logout", { method: "POST", body: {} }).catch(() => null);
    location.assign("/ui/login");
  });
  window.addEventListener("hashchange", show);
  await show();
}

start();
