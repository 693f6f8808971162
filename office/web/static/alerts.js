// The 告警 page: new alerts arrive over server-sent events, go to the top of the list, and sound once.
"use strict";
(function () {
  const list = document.getElementById("alerts");
  if (!list || !window.EventSource) {
    return;
  }
  const sound = new Audio("/static/alert.wav");
  const source = new EventSource("/alerts/events?after=" + encodeURIComponent(list.dataset.after || ""));
  source.addEventListener("alert", function (event) {
    const holder = document.createElement("div");
    holder.innerHTML = event.data;
    const card = holder.firstElementChild;
    if (!card || list.querySelector("[data-alert='" + CSS.escape(card.dataset.alert) + "']")) {
      return;  // shown already (an offline kiosk the page was rendered with)
    }
    list.prepend(card);
    const none = document.getElementById("no-alerts");
    if (none) {
      none.remove();
    }
    sound.play().catch(function () { /* the browser allows sound only after a click on the page */ });
  });
  source.addEventListener("back", function (event) {
    const card = list.querySelector("[data-alert='" + CSS.escape(event.data) + "']");
    if (card && !card.classList.contains("back")) {
      card.classList.add("back", "closed");
      const badge = document.createElement("span");
      badge.className = "badge online";
      badge.textContent = list.dataset.backLabel;
      card.querySelector("header").append(badge);
    }
  });
})();
