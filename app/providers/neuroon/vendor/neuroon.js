// The Neuroon stand-in's loader: read data-token, call the search API (data-api-url)
// with it, as Neuroon's widget does.
(function () {
  "use strict";
  var script = document.currentScript;
  var container = document.querySelector(script.dataset.container || "#neuroon-search");
  var base = (script.dataset.apiUrl || "https://api.neuroon.ai").replace(/\/+$/, "");
  container.dataset.theme = script.dataset.theme || "auto";
  container.dataset.position = script.dataset.position || "inline";

  function show(id, text) {
    container.textContent = "";
    var p = document.createElement("p");
    p.id = id;
    p.textContent = text;
    container.appendChild(p);
  }

  fetch(base + "/api/widget/search?q=shoes", { headers: { "X-Widget-Token": script.dataset.token } })
    .then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
    })
    .then(function (answer) {
      if (!answer.ok) throw new Error(answer.status + " " + (answer.body.message || answer.body.error));
      show("neuroon-status", "Neuroon search ready for " + answer.body.shop + ": " +
        answer.body.results.length + " results for \u201cshoes\u201d.");
      container.dataset.state = "ready";
    })
    .catch(function (err) {
      show("neuroon-status", "Search unavailable: " + err.message);
      container.dataset.state = "error";
    });
})();
