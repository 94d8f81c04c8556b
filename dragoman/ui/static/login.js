// The sign-in page: show why the last attempt failed. The form posts itself (no key in any URL).
if (new URLSearchParams(location.search).has("failed")) {
  document.getElementById("failed").hidden = false;
}
