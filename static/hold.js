// Counts the stock hold down live ("12:34 left"); at zero, shows the page that says it ran out.
// Without JavaScript the page's own text ("held until 12:34 UTC, about 14 minutes") stands.
(function () {
  var hold = document.querySelector(".hold[data-seconds-left]");
  if (!hold) return;
  var left = hold.querySelector(".hold-left");
  var deadline = Date.now() + Number(hold.dataset.secondsLeft) * 1000;
  function tick() {
    var seconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    left.textContent = minutes + ":" + (rest < 10 ? "0" : "") + rest + " left";
    if (seconds === 0) {
      clearInterval(timer);
      hold.classList.add("expired");
      left.textContent = "the hold has run out";
      window.setTimeout(function () { window.location = hold.dataset.expiredUrl; }, 1500);
    }
  }
  var timer = setInterval(tick, 1000);
  tick();
})();
