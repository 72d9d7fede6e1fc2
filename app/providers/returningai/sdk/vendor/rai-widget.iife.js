// The Returning.AI stand-in's Widget SDK: the <rai-*-widget> elements. Each one, when
// connected, validates its embed-token against v2-api-url (the SDK's access gate),
// mounts the bundle from bundle-url (bundle mode) or renders in place, and shows
// "Session expired" once its token's exp passes while it is still on the page.
(function () {
  "use strict";
  var TAGS = {
    "rai-store-widget": "RaiStoreWidget",
    "rai-channel-widget": "RaiChannelWidget",
    "rai-milestone-widget": "RaiMilestoneWidget",
    "rai-social-widget": "RaiSocialWidget",
    "rai-currency-widget": "RaiCurrencyWidget",
    "rai-referral-widget": "RaiReferralWidget",
    "rai-custom-widget": "RaiCustomWidget",
  };
  var bundles = {};

  function load(url) {
    if (!bundles[url]) {
      bundles[url] = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = url;
        s.onload = resolve;
        s.onerror = function () { reject(new Error("bundle failed to load")); };
        document.head.appendChild(s);
      });
    }
    return bundles[url];
  }

  function say(el, text, state) {
    el.textContent = "";
    var p = document.createElement("p");
    p.className = "rai-status";
    p.textContent = text;
    el.appendChild(p);
    el.dataset.state = state;
  }

  Object.keys(TAGS).forEach(function (tag) {
    customElements.define(tag, class extends HTMLElement {
      connectedCallback() {
        var el = this;
        var token = el.getAttribute("embed-token") || "";
        var api = (el.getAttribute("v2-api-url") || "https://api-v2.returning.ai").replace(/\/+$/, "");
        el.dataset.state = "loading";
        fetch(api + "/v2/api/widget-access-keys/validate", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ embedToken: token }),
        })
          .then(function (r) {
            return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; });
          })
          .then(function (answer) {
            if (!answer.ok) throw new Error(answer.status + " " + answer.body.message);
            var data = answer.body.data;
            var config = { embedToken: token, userIdentifiers: data.userIdentifiers, theme: el.getAttribute("theme") };
            var bundle = el.getAttribute("bundle-url");
            var mounted = bundle
              ? load(bundle).then(function () { el.textContent = ""; window[TAGS[tag]].mount(el, config); })
              : Promise.resolve(say(el, "Hello, " + (data.userIdentifiers["data-email"] || "member") + "!", "ready"));
            return mounted.then(function () {
              el.dataset.state = "ready";
              setTimeout(function () {
                if (!el.isConnected) return; // re-rendered with a fresh token in time
                say(el, "Session expired", "expired");
                el.dispatchEvent(new CustomEvent("rai:session-expired", { bubbles: true }));
              }, data.expiresAt * 1000 - Date.now());
            });
          })
          .catch(function (err) { say(el, "Widget unavailable: " + err.message, "error"); });
      }
    });
  });
})();
