"use strict";
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.hidden = true;
  try {
    const me = await cs.api("/api/login", {
      method: "POST",
      noRedirect: true,
      body: {
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
      },
    });
    const next = new URLSearchParams(location.search).get("next");
    const home = me.role === "agent" ? "/agent" : "/wall";
    // Only a local path: never follow an absolute URL someone put in the link.
    location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : home);
  } catch (e) {
    error.textContent = e.status === 401 ? "Wrong username or password." : "Sign-in failed: " + e.message;
    error.hidden = false;
  }
});
