// The portal's only script: copy buttons, confirm dialogs, live filters, the key-format check,
// the credential-type switch, and telling screen readers what happened. Every page works
// without it; it only saves clicks and says results out loud.
"use strict";

const announcer = document.getElementById("announcer");

function announce(text) {
  if (!announcer) return;
  // Emptied first so that the same words twice in a row ("Copied") are announced twice.
  announcer.textContent = "";
  requestAnimationFrame(() => { announcer.textContent = text; });
}

function copyText(text, button) {
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    announce("Copied");
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
  const count = document.getElementById(input.dataset.filterCount);
  if (!list) continue;
  input.addEventListener("input", () => {
    const needle = input.value.trim().toLowerCase();
    let shown = 0;
    for (const item of list.querySelectorAll("[data-search]")) {
      item.hidden = needle !== "" && !item.dataset.search.includes(needle);
      if (!item.hidden) shown += 1;
    }
    // The count is a polite live region: a screen reader hears it once typing pauses.
    if (count) count.textContent = shown === 1 ? "1 match" : shown + " matches";
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
      ? "Looks like " + input.dataset.provider + " key."
      : "This does not look like " + input.dataset.provider + " key; check it before saving.";
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

// After a refused submit: focus the summary of what was wrong, so it is read first, and let each
// of its links put the cursor in its field (an anchor alone only scrolls).
const summary = document.getElementById("error-summary");
if (summary) {
  summary.focus();
  summary.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='#']");
    const target = link && document.getElementById(link.hash.slice(1));
    if (!target) return;
    event.preventDefault();
    const field = target.matches("input, select, textarea") ? target : target.querySelector("input, select, textarea");
    const details = target.closest("details");
    if (details) details.open = true;
    (field || target).focus();
    target.scrollIntoView({ block: "center" });
  });
} else {
  // A saved change lands on a page whose confirmation (a status region) is already there, and a
  // region is heard when it changes: take its content out and put it back once the page is up.
  const done = document.querySelector("main .success[role=status], main .notice[role=status]");
  if (done) {
    const nodes = [...done.childNodes];
    done.replaceChildren();
    requestAnimationFrame(() => done.replaceChildren(...nodes));
  }
}
