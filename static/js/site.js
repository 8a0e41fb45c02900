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

// On a narrow screen the filters sidebar starts folded; it is open everywhere else
// (and, without JavaScript, open at every width).
const narrow = window.matchMedia("(max-width: 800px)");
const foldFilters = () => {
  for (const panel of document.querySelectorAll("details.filters-panel")) {
    panel.open = !narrow.matches;
  }
};
// Copy buttons do nothing without JavaScript: they show only with it.
const revealCopyButtons = (root) => {
  for (const button of root.querySelectorAll("[data-copy][hidden]")) {
    button.hidden = false;
  }
};
document.addEventListener("DOMContentLoaded", () => {
  foldFilters();
  revealCopyButtons(document);
});
document.addEventListener("htmx:load", (event) => revealCopyButtons(event.target));
narrow.addEventListener("change", foldFilters);

// Copy buttons: data-copy names the element whose text goes to the clipboard.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) {
    return;
  }
  const source = document.querySelector(button.dataset.copy);
  const text = source.value ?? source.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    source.select?.();
    document.execCommand("copy");
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
});

// The filter builder: a new column or operator fetches its row again, with the operators
// and value inputs that fit (exports-filter-row). One listener on the document, so a row
// just swapped in is never missed; without JavaScript, the step's buttons do it.
document.addEventListener("change", (event) => {
  const select = event.target.closest("select.refit");
  const row = select?.closest("tr[data-refit-url]");
  if (!row || !window.htmx) {
    return;
  }
  const values = { dataset: document.querySelector("#id_dataset")?.value ?? "" };
  for (const field of row.querySelectorAll("[name]")) {
    values[field.name] = field.value;
  }
  htmx.ajax("GET", row.dataset.refitUrl, { source: row, target: row, swap: "outerHTML", values });
});
