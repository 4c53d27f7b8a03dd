// The SNMP rule form, as progressive enhancement: show only the settings of the chosen SNMP version
// (without JavaScript every fieldset shows). A file of its own: the Content-Security-Policy allows
// no inline script.
(function () {
  var version = document.getElementById("id_snmp_version");
  function sync() {
    document.querySelectorAll("[data-snmp-version]").forEach(function (fieldset) {
      fieldset.hidden = fieldset.dataset.snmpVersion !== version.value;
    });
  }
  if (version) { version.addEventListener("change", sync); sync(); }
})();
