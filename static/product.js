// Product page: keep the quantity within what the picked option has in stock.
document.querySelectorAll("form.buy input[name=variant_id]").forEach(function (radio) {
  radio.addEventListener("change", function () {
    var quantity = document.getElementById("quantity");
    quantity.max = radio.dataset.max;
    if (Number(quantity.value) > Number(radio.dataset.max)) quantity.value = radio.dataset.max;
  });
});
