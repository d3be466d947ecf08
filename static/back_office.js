// What Flask-Admin's templates did in inline onclick handlers, which the back office's policy (script-src
// without 'unsafe-inline') refuses to run: templates/admin/ writes data- attributes instead, read here.
// Loaded in the head: every listener is on the document, there before any link can be clicked.
(function () {
  "use strict";

  // Flask-Admin's links that only open a menu or stand for the current tab point at javascript:void(0);
  // following one would run a javascript: URL, which the policy refuses (and reports), so they go nowhere.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest('a[href^="javascript:"]');
    if (link) {
      event.preventDefault();
    }
  }, true);

  document.addEventListener("click", function (event) {
    if (!event.target.closest) {
      return;
    }
    // A delete button asks first; cancelling (or a browser that cannot ask) keeps the record.
    var asking = event.target.closest("[data-confirm]");
    if (asking) {
      var agreed = false;
      try {
        agreed = window.confirm(asking.getAttribute("data-confirm"));
      } catch (error) {
        agreed = false;
      }
      if (!agreed) {
        event.preventDefault();
      }
      return;
    }
    // "With selected": Flask-Admin's actions.js checks the selection, asks, and posts the chosen action.
    var action = event.target.closest("[data-model-action]");
    if (action) {
      event.preventDefault();
      window.modelActions.execute(action.getAttribute("data-model-action"));
    }
  });
})();
