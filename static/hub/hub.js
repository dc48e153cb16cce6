// The hub's one script of its own (templates/base.html). Every page works without it; it only adds the copy
// buttons: <button type="button" data-copy="#element-id" data-copied="Copied">. No inline script anywhere: the
// Content-Security-Policy refuses them.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = "value" in source ? source.value : source.textContent;
  const done = () => {
    button.textContent = button.dataset.copied || button.textContent;
    button.classList.add("copied");
  };
  const fallback = () => {
    // No clipboard API (an insecure origin, or permission refused): select the text for Ctrl-C.
    if (source.select) source.select();
    try {
      if (document.execCommand("copy")) done();
    } catch (error) {
      /* the text stays selected */
    }
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, fallback);
  } else {
    fallback();
  }
});

// A button with data-confirm asks before its form is sent (revoke, remove); without the script the server's own
// confirmation page or the form's plain submit still applies.
document.addEventListener("submit", (event) => {
  const submitter = event.submitter;
  const message = (submitter && submitter.dataset.confirm) || event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
