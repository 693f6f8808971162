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
    list.insertAdjacentHTML("afterbegin", event.data);
    const none = document.getElementById("no-alerts");
    if (none) {
      none.remove();
    }
    sound.play().catch(function () { /* the browser allows sound only after a click on the page */ });
  });
})();
