"""The page's stylesheet and its one small script (passed to ``Blocks.launch``).

The script turns a click on a citation link (``<a class="cite" href="#cite-T-N">``, or
``#cite-T-rN`` for a refusal's nearest passage) into a request for the source panel: it writes
the key into a hidden textbox, clicks a hidden button (the server renders the panel), then
scrolls the new ``<mark>`` into view. It never reads or inserts document text; it only moves a
key of digits, a dash and an ``r``. It also puts the cursor back in the question box after Ask
is clicked, as Enter leaves it there, and keeps the character counter under the box current.
``submit_js`` runs in the browser as a question is sent: it empties the box then and there, so
that nothing the user types next is erased by a late update.

The stylesheet follows the browser's dark-mode preference through Gradio's ``.dark`` class and
theme variables; below 700 px the two columns stack and nothing is wider than the screen.
"""

from __future__ import annotations

PAGE_JS = r"""
() => {
  if (window.__ragCiteHandler) return;
  window.__ragCiteHandler = true;
  const KEY = /^#cite-(\d+-r?\d+)$/;

  function scrollToMark(key, triesLeft) {
    const mark = document.querySelector('#rag-source-panel mark.cite-mark');
    if (mark && mark.getAttribute('data-key') === key) {
      const box = mark.closest('.rag-source-text');
      if (box) {
        box.scrollTop = Math.max(0, mark.offsetTop - box.clientHeight / 3);
      }
      // 'center', not 'nearest': on a phone the panel is below the chat and 'nearest' leaves the
      // mark on the bottom edge of the screen.
      const r = mark.getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight * 0.8) {
        mark.scrollIntoView({block: 'center', inline: 'nearest'});
      }
      return;
    }
    if (triesLeft > 0) setTimeout(() => scrollToMark(key, triesLeft - 1), 50);
  }

  function updateCounter() {
    const box = document.querySelector('#rag-question textarea');
    const counter = document.querySelector('#rag-counter .rag-counter');
    if (!box || !counter) return;
    const limit = parseInt(counter.getAttribute('data-limit') || '0', 10);
    const n = box.value.length;
    const shown = counter.querySelector('.rag-count');
    const value = n.toLocaleString('en');
    if (shown && shown.textContent !== value) shown.textContent = value;
    counter.classList.toggle('rag-over', limit > 0 && n > limit);
  }
  document.addEventListener('input', updateCounter, true);
  setInterval(updateCounter, 300);  // also after the server fills or empties the box

  // Whether an answer is being written: Ask is disabled until it is done.
  window.__ragAnswering = () => {
    const holder = document.querySelector('#rag-ask');
    const ask = holder && (holder.tagName === 'BUTTON' ? holder : holder.querySelector('button'));
    return !!(ask && ask.disabled);
  };
  function say(message) {
    const status = document.querySelector('#rag-status .rag-status');
    if (status) { status.textContent = message; status.setAttribute('role', 'status'); }
  }
  // The text a question is sent with, taken at the keydown or click that sends it (see submit_js).
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
    const box = event.target && event.target.closest ? event.target.closest('#rag-question textarea') : null;
    if (!box) return;
    if (window.__ragAnswering()) {
      if (box.value.trim()) say('Still answering the last question: Enter sends this one when it is done, or press Stop.');
      return;
    }
    window.__ragSent = box.value;
  }, true);

  // Citation links are "[1]" on screen; each gets a name of its own for screen readers, from
  // its key (the chat's sanitiser drops aria attributes written into the message HTML).
  function labelCitations() {
    for (const link of document.querySelectorAll('#rag-chat a.cite:not([aria-label])')) {
      const m = (link.getAttribute('href') || '').match(/^#cite-(\d+)-(r?)(\d+)$/);
      if (!m) continue;
      const what = m[2] ? 'nearest passage' : 'source';
      const quoted = link.textContent.trim();
      if (/^\[?\d+\]?$/.test(quoted)) {
        link.setAttribute('aria-label', `${what} ${m[3]} of answer ${Number(m[1]) + 1}: show it in its document`);
      }
    }
  }
  new MutationObserver(labelCitations).observe(document.body, {subtree: true, childList: true});

  document.addEventListener('click', (event) => {
    const ask = event.target && event.target.closest ? event.target.closest('#rag-ask') : null;
    if (ask) {
      const box = document.querySelector('#rag-question textarea');
      if (box && !window.__ragAnswering()) window.__ragSent = box.value;
      if (box) setTimeout(() => box.focus(), 0);
      return;
    }
    const link = event.target && event.target.closest ? event.target.closest('a.cite') : null;
    if (!link) return;
    const match = (link.getAttribute('href') || '').match(KEY);
    if (!match) return;
    event.preventDefault();
    event.stopPropagation();
    const field = document.querySelector('#rag-cite-key textarea, #rag-cite-key input');
    const holder = document.querySelector('#rag-cite-go');
    const button = holder && (holder.tagName === 'BUTTON' ? holder : holder.querySelector('button'));
    if (!field || !button) return;
    field.value = match[1];
    field.dispatchEvent(new Event('input', {bubbles: true}));
    button.click();
    scrollToMark(match[1], 200);
  }, true);
}
"""



def submit_js(limit: int) -> str:
    """The browser half of sending a question. The page script recorded the box's text at the
    very keydown or click that sent it (``window.__ragSent``); that text is what is sent, and it
    alone leaves the box, so that whatever is typed after Enter stays, however late this runs.
    Nothing leaves the box while an answer is coming (Ask is disabled) or when the question is
    over ``limit`` characters (it is not sent; the status says why).
    """
    return (
        "(question, ...rest) => {"
        " const box = document.querySelector('#rag-question textarea');"
        " const sent = typeof window.__ragSent === 'string' ? window.__ragSent : question;"
        " window.__ragSent = null;"
        " const answering = window.__ragAnswering ? window.__ragAnswering() : false;"  # page script not run yet
        " if (box && !answering && (sent || '').trim()"
        f" && sent.length <= {int(limit)} && box.value.startsWith(sent)) {{"
        "   box.value = box.value.slice(sent.length).replace(/^\\n/, '');"
        "   box.dispatchEvent(new Event('input', {bubbles: true})); }"
        " return [sent, ...rest]; }"
    )


PAGE_CSS = r"""
.gradio-container { max-width: 1480px !important; }
#rag-header { align-items: center; gap: 12px; padding: 4px 2px 0; }
#rag-header .rag-brand { font-size: 1.45rem; font-weight: 700; letter-spacing: -0.01em; }
#rag-header .rag-brand small { display: block; font-size: 0.86rem; font-weight: 400;
  color: var(--body-text-color-subdued); letter-spacing: 0; }
.rag-summary { text-align: right; color: var(--body-text-color-subdued); font-size: 0.9rem; }

.rag-question { white-space: normal; }
.rag-answer .rag-text { line-height: 1.55; }
.rag-answer.rag-refused .rag-text { color: var(--body-text-color-subdued); font-style: italic; }
.rag-answer.rag-error .rag-text { color: var(--error-text-color, #b91c1c); }
.rag-label { font-size: 0.72rem; font-weight: 600; text-transform: uppercase; letter-spacing: 0.06em;
  color: var(--body-text-color-subdued); }
.rag-searched { margin-bottom: 6px; padding: 4px 8px; border-left: 3px solid var(--color-accent);
  background: var(--background-fill-secondary); border-radius: 4px; font-size: 0.9rem; }
.rag-searched .rag-standalone { font-style: italic; }
a.cite { display: inline-block; white-space: nowrap; padding: 0 4px; margin: 0 1px; border-radius: 4px; font-size: 0.82em;
  font-weight: 600; line-height: 1.35; text-decoration: none !important; cursor: pointer;
  color: var(--color-accent) !important; background: var(--color-accent-soft); }
a.cite:hover { filter: brightness(0.92); text-decoration: underline !important; }
.rag-sources { margin-top: 10px; padding-top: 6px; border-top: 1px solid var(--border-color-primary); }
ol.rag-source-list { list-style: none; margin: 4px 0 0; padding: 0; }
ol.rag-source-list li { display: flex; gap: 6px; align-items: baseline; margin: 4px 0; font-size: 0.9rem; }
ol.rag-source-list li > a.cite { flex-shrink: 0; }
.rag-source-item { min-width: 0; }
.rag-source-item a.cite { display: inline; white-space: normal; background: none; font-weight: 500; padding: 0;
  margin: 0; font-size: 1em; }
.rag-where { display: block; color: var(--body-text-color-subdued); font-size: 0.78rem; }
.rag-meta { margin-top: 6px; color: var(--body-text-color-subdued); font-size: 0.75rem; }
.rag-short { font-size: 1.12rem; line-height: 1.4; margin-bottom: 4px; }
.rag-short strong { font-weight: 700; }
.rag-answer mark.rag-span { background: var(--color-accent-soft); color: inherit; font-weight: 600;
  padding: 0 2px; border-radius: 3px; box-shadow: inset 0 -2px 0 var(--color-accent); }
.rag-searching .rag-text { color: var(--body-text-color-subdued); }
.rag-dots::after { content: "…"; display: inline-block; width: 1.2em; animation: rag-pulse 1s ease-in-out infinite; }
@keyframes rag-pulse { 50% { opacity: 0.2; } }
.rag-why { margin-top: 8px; font-size: 0.9rem; color: var(--body-text-color-subdued); }
details.rag-nearest { margin-top: 10px; padding-top: 6px; border-top: 1px solid var(--border-color-primary);
  font-size: 0.9rem; }
details.rag-nearest > summary { cursor: pointer; color: var(--body-text-color-subdued); }
details.rag-nearest ol.rag-source-list li { font-size: 0.88rem; }

#rag-source-panel { min-height: 200px; }
.rag-source { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 14px 16px;
  background: var(--background-fill-primary); }
.rag-source-empty { color: var(--body-text-color-subdued); text-align: center; padding: 48px 20px; }
.rag-fake-cite { color: var(--color-accent); font-weight: 600; }
.rag-source-label { margin-bottom: 4px; }
.rag-source-title { font-size: 1.05rem; font-weight: 650; line-height: 1.35; margin-bottom: 8px; }
dl.rag-source-meta { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 4px 14px;
  margin: 0 0 10px; font-size: 0.82rem; }
dl.rag-source-meta > div.rag-wide { grid-column: 1 / -1; }
dl.rag-source-meta dt { display: inline; color: var(--body-text-color-subdued); margin-right: 6px; }
dl.rag-source-meta dd { display: inline; margin: 0; font-family: var(--font-mono); overflow-wrap: anywhere; }
.rag-source-note { font-size: 0.85rem; color: var(--error-text-color, #b91c1c); margin-bottom: 6px; }
.rag-source-text { position: relative; max-height: min(60vh, 500px); overflow-y: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; line-height: 1.6; font-size: 0.92rem; padding: 10px 12px; border-radius: 8px;
  background: var(--background-fill-secondary); }
mark.cite-mark { background: #fde68a; color: #1f2937; padding: 1px 2px; border-radius: 3px;
  box-shadow: 0 0 0 2px #f59e0b55; }
mark.cite-mark mark.rag-span { background: #f59e0b; color: #111827; font-weight: 650; padding: 0 1px;
  border-radius: 2px; }

.rag-upload-results { width: 100%; border-collapse: collapse; font-size: 0.9rem; }
.rag-upload-results th, .rag-upload-results td { text-align: left; padding: 4px 8px;
  border-bottom: 1px solid var(--border-color-primary); }
.rag-upload-results .rag-file { font-family: var(--font-mono); overflow-wrap: anywhere; }
.rag-status-added .rag-status, .rag-status-updated .rag-status { color: #15803d; font-weight: 600; }
.rag-status-refused .rag-status, .rag-status-skipped .rag-status,
.rag-status-failed .rag-status { color: var(--error-text-color, #b91c1c); font-weight: 600; }
.rag-muted { color: var(--body-text-color-subdued); }
#rag-below-question { gap: 8px; align-items: baseline; min-height: 1.4em; }
.rag-status { font-size: 0.85rem; color: var(--body-text-color-subdued); }
.rag-status-error, .rag-date-hint { color: var(--error-text-color, #b91c1c); font-size: 0.85rem; }
.rag-counter { text-align: right; font-size: 0.78rem; color: var(--body-text-color-subdued); white-space: nowrap; }
.rag-counter.rag-over { color: var(--error-text-color, #b91c1c); font-weight: 600; }
.rag-note { margin-top: 6px; font-size: 0.85rem; color: var(--body-text-color-subdued); }
footer { opacity: 0.7; }

.dark mark.cite-mark { background: #854d0e; color: #fef9c3; box-shadow: 0 0 0 2px #ca8a0488; }
.dark mark.cite-mark mark.rag-span { background: #facc15; color: #111827; }
.dark .rag-status-added .rag-status, .dark .rag-status-updated .rag-status { color: #4ade80; }

/* Phones and narrow windows: one column (chat, then the source panel), nothing wider than the
   screen. Gradio's columns wrap by themselves (their min-width is min(N px, 100%)). Gradio puts
   ".gradio-container... .contain " before every selector here (not before ".dark ..."), so
   the page's own padding, outside .contain, is set in PAGE_HEAD. */
@media (max-width: 700px) {
  #rag-header .rag-brand small { display: none; }
  .rag-summary { text-align: left; }
  #rag-chat { height: min(62vh, 520px) !important; }
  .rag-source-text { max-height: 50vh; }
  dl.rag-source-meta { grid-template-columns: minmax(0, 1fr); }
}
"""

# Unscoped CSS (Gradio scopes PAGE_CSS inside the app's content): the page padding on phones.
PAGE_HEAD = """<style>
@media (max-width: 700px) {
  .gradio-container .main.app { padding-left: 8px !important; padding-right: 8px !important; }
}
</style>"""
