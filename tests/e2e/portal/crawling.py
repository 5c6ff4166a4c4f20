"""A crawler over the portal in Chromium: every page a signed-in person can reach by links, the
forms on those pages, and what a page must show (axe-core's verdict, the landmarks, an error
summary after a refused form).

One page of each shape is visited (``/portal/grants/{id}`` is one shape, each provider's form
another), so the crawl covers every template and every provider without visiting each audit
event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from playwright.sync_api import APIResponse, Page

# Uuids, random ids and sequence numbers: a path segment or query value that names one record.
_ID = re.compile(r"^(?=.*\d)[\w-]{16,}$|^\d+$")
SKIP = ("/portal/static/", "/portal/audit/export", "/portal/login", "/portal/logout")
PER_SHAPE = {"{id}": 3}  # a shape with an id: a few records (an active and a revoked grant)

LINKS = """() => [...document.querySelectorAll('a[href]')]
  .filter(a => !a.hasAttribute('download'))
  .map(a => a.getAttribute('href'))
  .filter(h => h.startsWith('/portal'))"""

FACTS = """() => ({
  lang: document.documentElement.lang,
  title: document.title,
  h1: document.querySelectorAll('h1').length,
  main: document.querySelectorAll('main, [role=main]').length,
})"""

# Each form as the browser sees it: its fields in order, with what a person can change.
FORMS = """() => [...document.forms].map((form, index) => ({
  index,
  method: (form.getAttribute('method') || 'get').toLowerCase(),
  action: new URL(form.getAttribute('action') || location.pathname + location.search,
                  location.href).pathname,
  confirm: form.hasAttribute('data-confirm'),
  fields: [...form.elements].filter(e => e.name).map(e => ({
    name: e.name,
    tag: e.tagName.toLowerCase(),
    type: (e.type || '').toLowerCase(),
    value: e.value,
    checked: !!e.checked,
    required: e.required || !!(e.labels && [...e.labels].some(l => l.querySelector('.req'))),
    options: e.tagName === 'SELECT' ? [...e.options].map(o => o.value) : [],
    types: (e.closest('[data-types-of]') || {dataset: {}}).dataset.typesOf || '',
    pattern: e.dataset.pattern || '',
  })),
}))"""


@dataclass
class Field:
    name: str
    tag: str
    type: str
    value: str
    checked: bool
    required: bool
    options: list[str]
    types: str
    pattern: str  # a provider's key format, which the server enforces

    @property
    def editable(self) -> bool:
        return self.type not in ("hidden", "submit", "button")


@dataclass
class Form:
    page: str  # the URL it was found on
    index: int
    method: str
    action: str
    confirm: bool
    fields: list[Field]

    @property
    def editable(self) -> list[Field]:
        return [f for f in self.fields if f.editable]

    @property
    def shape(self) -> tuple[str, str, tuple[str, ...]]:
        names = tuple(sorted({f.name for f in self.fields}))
        return (self.method, url_shape(self.action)[0], names)

    def data(self, overrides: dict[str, str | list[str]] | None = None) -> str:
        """The form as the browser would send it, with some fields set to other values."""
        overrides = overrides or {}
        pairs: list[tuple[str, str]] = []
        done: set[str] = set()
        for f in self.fields:
            if f.name in overrides:
                if f.name not in done:
                    value = overrides[f.name]
                    pairs += [(f.name, v) for v in ([value] if isinstance(value, str) else value)]
                    done.add(f.name)
            elif f.type in ("checkbox", "radio"):
                if f.checked:
                    pairs.append((f.name, f.value))
            elif f.type not in ("submit", "button"):
                pairs.append((f.name, f.value))
        return urlencode(pairs)


def url_shape(url: str) -> tuple[str, int]:
    """``/portal/grants/{id}`` for any grant; with the query's keys (app_id aside: it only
    preselects) and the number of records the crawler visits of that shape."""
    parts = urlsplit(url)
    path = "/".join("{id}" if _ID.match(s) else s for s in parts.path.split("/"))
    keys = sorted({k for k, _ in parse_qsl(parts.query) if k != "app_id"})
    shape = path + ("?" + "&".join(keys) if keys else "")
    return shape, PER_SHAPE["{id}"] if "{id}" in shape else 1


def serious(page: Page, axe_source: str) -> list[str]:
    """axe-core's critical and serious violations on the page, one line each."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated through the DevTools protocol: the portal's CSP (rightly) refuses an inline
        # script tag, and the test must not weaken it to look.
        page.evaluate(axe_source)
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
          .filter(v => v.impact === 'critical' || v.impact === 'serious')
          .map(v => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.slice(0, 3)
            .map(n => n.target.join(' ')).join(', ')}`)"""
    )
    return [str(line) for line in found]


def facts(page: Page) -> list[str]:
    """What every page must have: a language, a title, one h1 and one main landmark."""
    got = page.evaluate(FACTS)
    problems = []
    if not got["lang"]:
        problems.append("no lang on <html>")
    if not got["title"].strip():
        problems.append("no title")
    if got["h1"] != 1:
        problems.append(f"{got['h1']} h1 elements")
    if got["main"] != 1:
        problems.append(f"{got['main']} main landmarks")
    return problems


@dataclass
class Crawl:
    pages: dict[str, str] = field(default_factory=dict)  # url -> shape
    forms: list[Form] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def unique_forms(self) -> list[Form]:
        seen: dict[Any, Form] = {}
        for form in self.forms:
            seen.setdefault(form.shape, form)
        return list(seen.values())


def crawl(page: Page, base: str, start: str, axe_source: str) -> Crawl:
    """Every page reachable from ``start`` by links (one or a few of each shape), each checked
    with axe-core and for its landmarks; the forms found on them."""
    result = Crawl()
    counts: dict[str, int] = {}
    queue = [start]
    while queue:
        url = queue.pop(0).split("#")[0]
        shape, cap = url_shape(url)
        if url in result.pages or counts.get(shape, 0) >= cap or url.startswith(SKIP):
            continue
        counts[shape] = counts.get(shape, 0) + 1
        result.pages[url] = shape
        answer = page.goto(base + url)
        status = answer.status if answer else 0
        if status >= 400:
            result.problems.append(f"{url}: a link leads to a {status} page")
        for line in [*serious(page, axe_source), *facts(page)]:
            result.problems.append(f"{url}: {line}")
        result.forms += [
            Form(page=url, **{**f, "fields": [Field(**x) for x in f["fields"]]})
            for f in page.evaluate(FORMS)
        ]
        queue += [h for h in page.evaluate(LINKS) if h.split("#")[0] not in result.pages]
    return result


class Answer(HTMLParser):
    """What the checks read from a page's HTML: its title, the error summary's links, every id,
    and the names and ids of the fields marked invalid."""

    def __init__(self, response: APIResponse) -> None:
        super().__init__()
        self.status = response.status
        self.url = response.url
        self.title = ""
        self.ids: set[str] = set()
        self.summary = False
        self.summary_items = 0
        self.summary_links: list[str] = []
        self.invalid: set[str] = set()
        self._in_title = False
        self._in_summary = 0
        self.text = response.text()
        self.feed(self.text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if a.get("aria-invalid") == "true" or "has-error" in a.get("class", ""):
            self.invalid.update(x for x in (a.get("name"), a.get("id")) if x)
        if a.get("id") == "error-summary":
            self.summary, self._in_summary = True, 1
        elif self._in_summary and tag == "div":
            self._in_summary += 1
        if self._in_summary and tag == "li":
            self.summary_items += 1
        if self._in_summary and tag == "a":
            self.summary_links.append(a.get("href", ""))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._in_summary:
            self._in_summary -= 1
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def refusal_problems(self) -> list[str]:
        """A refused form's page: a 4xx, "Error:" in the title, a summary whose links resolve."""
        problems = []
        if not 400 <= self.status < 500:
            problems.append(f"answered {self.status}, not a 4xx")
        if not self.title.startswith("Error:"):
            problems.append(f"title {self.title!r} does not start with 'Error:'")
        if not self.summary or self.summary_items == 0:
            problems.append("no error summary with a message")
        for href in self.summary_links:
            if not href.startswith("#") or href[1:] not in self.ids:
                problems.append(f"summary link {href} leads nowhere")
        return problems
