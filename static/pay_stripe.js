// Pay page with real Stripe keys: Stripe's Payment Element (cards and whatever payment methods
// the PaymentIntent allows), confirmed with Stripe.js. No inline script, so the
// Content-Security-Policy needs no 'unsafe-inline'. A method that must leave the page (3-D
// Secure, bank redirects) comes back to the return URL, which shows the order's state.
(function () {
  var mount = document.getElementById("payment-element");
  if (!mount || typeof Stripe === "undefined") return;
  var stripe = Stripe(mount.dataset.publishableKey);
  var elements = stripe.elements({ clientSecret: mount.dataset.clientSecret });
  elements.create("payment").mount(mount);
  var button = document.getElementById("pay");
  var message = document.getElementById("message");
  button.addEventListener("click", function () {
    button.disabled = true;
    message.textContent = "";
    stripe
      .confirmPayment({
        elements: elements,
        confirmParams: { return_url: mount.dataset.returnUrl },
        redirect: "if_required",
      })
      .then(function (result) {
        if (result.error) {
          message.textContent = result.error.message;
          button.disabled = false;
        } else {
          window.location = mount.dataset.returnUrl;
        }
      });
  });
})();
