// The site's only script of its own (the Content Security Policy allows no inline script).
document.addEventListener("click", (event) => {
  const close = event.target.closest("[data-close-dialog]");
  if (close) {
    close.closest("dialog").remove();
    return;
  }
  const select = event.target.closest("[data-select-on-click]");
  if (select) {
    select.select();
  }
});
