// The Hissuno stand-in's mount bundle. Hissuno's widget is a React component
// (HissunoWidget from @hissuno/widget) with no script-tag build, so a merchant ships a
// small bundle that mounts it; this plays that bundle in plain JavaScript, talking to
// Hissuno's API exactly as the component does.
//
// Contract with the loader page (templates/providers/hissuno.html):
// - the mount point is <div id="hissuno-widget">;
// - window.hissunoProps is set before this script runs: HissunoWidget's props,
//   {projectId, apiUrl?, widgetToken?, userId?, userMetadata?, theme?};
// - whenever props change (a renewed widgetToken), the page dispatches
//   new CustomEvent("hissuno:props", {detail: {...the changed props}}) on the mount
//   point. As with the React prop, a new widgetToken is used from the next send on:
//   the widget never fetches or refreshes a token itself.
//
// What it does: fetches the widget settings (GET {apiUrl minus /chat}?projectId=…),
// sends "hello" (POST {apiUrl}, JSON body with the whole conversation and, only when
// there is one, the widgetToken), then reads the reply from the run's event stream
// (GET {apiUrl}/stream?projectId=…&sessionId=…).
//
// What the tests read: <h1 id="hissuno-greeting"> shows the last reply, or
// "Support chat unavailable: <status> <error>"; mount.dataset.state is "ready" or
// "error"; mount.dataset.sent counts the sends answered; window.hissunoSend(text) sends
// another message with the current props and resolves to what the greeting then shows.
(function () {
  "use strict";
  var DEFAULT_API_URL = "/api/integrations/widget/chat"; // relative: the page's origin
  var mount = document.getElementById("hissuno-widget");
  var props = Object.assign({}, window.hissunoProps);
  var conversation = []; // sent whole with every message, as the widget does
  var sessionId; // Hissuno's, from its first answer: later sends continue that session
  var sent = 0;

  mount.addEventListener("hissuno:props", function (event) {
    Object.assign(props, event.detail);
  });

  function apiUrl() {
    return props.apiUrl || DEFAULT_API_URL;
  }

  function show(text, state) {
    var h = document.getElementById("hissuno-greeting");
    if (!h) {
      h = document.createElement("h1");
      h.id = "hissuno-greeting";
      mount.appendChild(h);
    }
    h.textContent = text;
    mount.dataset.state = state;
  }

  function loadSettings() {
    var url = apiUrl().replace(/\/chat\/?$/, "") + "?projectId=" + encodeURIComponent(props.projectId);
    fetch(url)
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (settings) {
        if (settings && settings.tokenRequired && !props.widgetToken) {
          console.warn("Hissuno: this project requires a widgetToken, and none was given");
        }
      })
      .catch(function () {}); // the widget falls back to its defaults
  }

  function post(messages) {
    var body = {
      messages: messages,
      projectId: props.projectId,
      userId: props.userId,
      userMetadata: props.userMetadata,
      pageUrl: location.href,
      pageTitle: document.title,
      sessionId: sessionId,
    };
    if (props.widgetToken) body.widgetToken = props.widgetToken;
    return fetch(apiUrl(), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (answer) {
        if (!r.ok) throw new Error(r.status + " " + (answer.error || r.statusText));
        return answer;
      });
    });
  }

  function reply(runSessionId) {
    var url = apiUrl() + "/stream?projectId=" + encodeURIComponent(props.projectId) +
      "&sessionId=" + encodeURIComponent(runSessionId);
    return new Promise(function (resolve, reject) {
      var source = new EventSource(url);
      var text = "";
      // Every event comes as "message"; its data's type says which it is.
      source.onmessage = function (event) {
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        if (data.type === "message-chunk") {
          text += data.content || "";
        } else if (data.type === "message-complete") {
          source.close(); // or EventSource reconnects once the server ends the stream
          resolve(text);
        } else if (data.type === "error") {
          source.close();
          reject(new Error(data.message));
        }
      };
      source.onerror = function () {
        source.close();
        reject(new Error("the reply stream failed"));
      };
    });
  }

  function send(text) {
    var messages = conversation.concat([{ role: "user", content: text }]);
    return post(messages)
      .then(function (answer) {
        sessionId = answer.sessionId;
        return reply(answer.sessionId);
      })
      .then(
        function (answer) {
          conversation = messages.concat([{ role: "assistant", content: answer }]);
          sent += 1;
          mount.dataset.sent = String(sent);
          show(answer, "ready");
          return answer;
        },
        function (err) {
          var shown = "Support chat unavailable: " + err.message;
          show(shown, "error");
          return shown;
        }
      );
  }

  mount.classList.add("hissuno-" + (props.theme || "light"));
  mount.dataset.sent = "0";
  window.hissunoSend = send;
  loadSettings();
  send("hello");
})();
