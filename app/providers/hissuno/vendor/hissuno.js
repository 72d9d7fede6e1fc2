// The Hissuno stand-in's widget: send the widget token to the API, greet the user.
(function () {
  "use strict";
  var mount = document.getElementById("hissuno-widget");
  var base = new URL(document.currentScript.src).origin;

  function show(text, state) {
    mount.textContent = "";
    var h = document.createElement("h1");
    h.id = "hissuno-greeting";
    h.textContent = text;
    mount.appendChild(h);
    mount.dataset.state = state;
  }

  fetch(base + "/api/widget/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ projectId: mount.dataset.projectId, widgetToken: mount.dataset.widgetToken }),
  })
    .then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
    })
    .then(function (answer) {
      if (!answer.ok) throw new Error(answer.status + " " + answer.body.error);
      show("Hi, " + answer.body.userId + "! How can we help?", "ready");
    })
    .catch(function (err) { show("Support chat unavailable: " + err.message, "error"); });
})();
