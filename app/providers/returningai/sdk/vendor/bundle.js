// The Returning.AI stand-in's widget bundle (bundle mode): one global per widget type,
// each with mount(container, config), which the SDK calls.
(function () {
  "use strict";
  function mount(container, config) {
    var h = document.createElement("h1");
    h.className = "rai-greeting";
    h.textContent = "Hello, " + (config.userIdentifiers["data-email"] || "member") + "!";
    container.appendChild(h);
    container.dataset.theme = config.theme || "light";
  }
  ["RaiStoreWidget", "RaiChannelWidget", "RaiMilestoneWidget", "RaiSocialWidget",
   "RaiCurrencyWidget", "RaiReferralWidget", "RaiCustomWidget"].forEach(function (name) {
    window[name] = { mount: mount };
  });
})();
