// Follow a report being generated on /reports/: ask for its progress every two seconds, reload when it ends.
"use strict";
document.querySelectorAll(".run-progress").forEach(function (box) {
  const bar = box.querySelector("progress");
  const status = box.querySelector(".run-status");
  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.json(); })
      .then(function (run) {
        if (run.state !== "running") { window.location.reload(); return; }
        bar.max = run.total || 1;
        bar.value = run.processed;
        status.textContent = "正在生成：已写 " + run.processed + " / " + run.total + " 人（" + run.percent + "%）";
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
});
