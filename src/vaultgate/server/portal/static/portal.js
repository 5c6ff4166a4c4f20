// The portal's only script: copy buttons, confirm dialogs, live filters, the key-format check and
// the credential-type switch. Every page works without it; it only saves clicks.
"use strict";

function copyText(text, button) {
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text) && done());
  } else if (fallbackCopy(text)) {
    done();
  }
}

function fallbackCopy(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
  area.remove();
  return ok;
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const target = document.getElementById(button.dataset.copy);
  if (target) copyText(target.textContent.trim(), button);
});

document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

for (const input of document.querySelectorAll("[data-filter]")) {
  const list = document.getElementById(input.dataset.filter);
  if (!list) continue;
  input.addEventListener("input", () => {
    const needle = input.value.trim().toLowerCase();
    for (const item of list.querySelectorAll("[data-search]")) {
      item.hidden = needle !== "" && !item.dataset.search.includes(needle);
    }
  });
}

for (const input of document.querySelectorAll("input[data-pattern]")) {
  const out = document.getElementById(input.dataset.patternOut);
  let pattern = null;
  try { pattern = new RegExp(input.dataset.pattern); } catch (e) { continue; }
  input.addEventListener("input", () => {
    const value = input.value.trim();
    if (!value) { out.textContent = ""; out.className = "check"; return; }
    const ok = pattern.test(value);
    out.textContent = ok
      ? "Looks like a " + input.dataset.provider + " key."
      : "This does not look like a " + input.dataset.provider + " key; check it before saving.";
    out.className = ok ? "check ok" : "check bad";
  });
}

const typeSelect = document.querySelector("select[data-types]");
if (typeSelect) {
  // Show only the fields of the chosen credential type; with none chosen, show them all.
  const sync = () => {
    for (const group of document.querySelectorAll("[data-types-of]")) {
      const types = group.dataset.typesOf.split(" ");
      group.hidden = typeSelect.value !== "" && !types.includes(typeSelect.value);
    }
  };
  typeSelect.addEventListener("change", sync);
  sync();
}
