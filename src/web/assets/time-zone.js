// Preselects the reader's time zone on the subscribe form, from the browser's own setting.
// Without JavaScript the form keeps subscribers.default_time_zone.
(function () {
  var select = document.getElementById("time_zone");
  if (!select || select.hasAttribute("data-chosen")) return;
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) {
      select.selectedIndex = i;
      return;
    }
  }
})();
