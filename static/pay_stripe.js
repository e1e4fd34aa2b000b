// Pay page with real Stripe keys: a card Element, confirmed with Stripe.js (no inline script,
// so the Content-Security-Policy needs no 'unsafe-inline').
(function () {
  var mount = document.getElementById("card-element");
  if (!mount || typeof Stripe === "undefined") return;
  var stripe = Stripe(mount.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount(mount);
  document.getElementById("pay").addEventListener("click", function () {
    stripe
      .confirmCardPayment(mount.dataset.clientSecret, { payment_method: { card: card } })
      .then(function (result) {
        if (result.error) {
          document.getElementById("message").textContent = result.error.message;
        } else {
          window.location = mount.dataset.returnUrl;
        }
      });
  });
})();
