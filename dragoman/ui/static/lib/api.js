// The admin API, called with the session cookie; state changes carry the session's CSRF token.

export const session = { key_id: null, role: null, csrf: null, expires: null };

export async function loadSession() {
  const r = await fetch("/ui/session", { credentials: "same-origin" });
  if (r.status === 401) { location.assign("/ui/login"); throw new Error("signed out"); }
  Object.assign(session, await r.json());
  return session;
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (method !== "GET") {
    headers["content-type"] = "application/json";
    headers["x-csrf-token"] = session.csrf;
  }
  const r = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) { location.assign("/ui/login"); throw new Error("signed out"); }
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  const message = data && data.error ? data.error.message : null;
  return { status: r.status, ok: r.ok, data, message };
}

export const isAdmin = () => session.role === "admin";
