// Autocomplete for the catalog's search box: titles from /api/v1/search/suggest as you type.
(function () {
  var input = document.querySelector('input[list="suggestions"]');
  var list = document.getElementById("suggestions");
  if (!input || !list) return;
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    var text = input.value.trim();
    if (text.length < 2) { list.replaceChildren(); return; }
    timer = setTimeout(function () {
      fetch("/api/v1/search/suggest?q=" + encodeURIComponent(text))
        .then(function (response) { return response.ok ? response.json() : { suggestions: [] }; })
        .then(function (body) {
          list.replaceChildren.apply(list, body.suggestions.map(function (title) {
            var option = document.createElement("option");
            option.value = title;
            return option;
          }));
        })
        .catch(function () {});
    }, 150);
  });
})();
