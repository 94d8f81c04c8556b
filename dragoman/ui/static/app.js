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
let navigation = 0;  // which show() owns #main: a render that finishes after a later navigation is dropped
let dropped = 0;

// Each navigation renders its page into a root of its own, put into #main only if no navigation came after it
// while it loaded: a slow page (the overview's roll-up over a large store) would otherwise replace the page
// the user went to next. Every page's live parts (the overview's feed) are closed first, whichever page opened them.
async function show() {
  const token = ++navigation;
  const stale = () => token !== navigation;
  for (const page of Object.values(PAGES)) if (page.leave) page.leave();
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const page = PAGES[name] || overview;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === "#/" + (name === "request" ? "requests" : name));
  }
  const main = document.getElementById("main");
  mount(main, h("p", { class: "muted" }, "Loading…"));
  main.removeAttribute("data-page");
  const root = h("div", { class: "page" });
  let failure = null;
  try {
    await page.render(root, rest.map(decodeURIComponent), { stale });
  } catch (err) {
    failure = err;
  }
  if (stale()) {
    // Said on the body so a test can tell the late render was dropped rather than not yet done.
    document.body.setAttribute("data-dropped-renders", String(++dropped));
    return;
  }
  if (failure === null) {
    mount(main, root);
    main.setAttribute("data-page", name);
  } else if (String(failure.message) !== "signed out") {
    mount(main, h("div", { class: "empty error" }, "This page could not load: " + failure.message));
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
