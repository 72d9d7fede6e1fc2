// The stand-in vendor's widget: read the injected token, call the vendor's API with it.
(function () {
  "use strict";
  var init = window.__WIDGET_INIT__ || {};
  var root = document.getElementById("widget-root");

  function show(title, detail) {
    root.textContent = "";
    var h = document.createElement("h1");
    h.id = "greeting";
    h.textContent = title;
    root.appendChild(h);
    if (detail) {
      var p = document.createElement("p");
      p.textContent = detail;
      root.appendChild(p);
    }
  }

  if (!init.token) {
    show("No token", "Open this widget through widget-proxy.");
    return;
  }
  fetch(new URL("/api/widget/me", document.baseURI), {
    headers: { Authorization: "Bearer " + init.token },
  })
    .then(function (r) {
      if (!r.ok) throw new Error("the vendor API answered " + r.status);
      return r.json();
    })
    .then(function (me) {
      show("Hello, " + me.email + "!", "You have " + me.points + " points in the " + init.widgetType + ".");
      root.dataset.state = "ready";
    })
    .catch(function (err) {
      show("The widget could not load", String(err.message || err));
      root.dataset.state = "error";
    });
})();
