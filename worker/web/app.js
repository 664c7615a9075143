// app.js — the operator page: reads /admin/api/* every 2 s and renders it. Everything
// that comes from Redis is producer-controlled, so it is only ever put into the page as
// text (textContent, attribute values through DOM properties), never as HTML.
'use strict';

const API = 'api/';
const EVERY_MS = 2000;
let token = '';          // the operator token: this tab's memory only
let shownThumbs = '';    // the completions already drawn (their images are not reloaded)
let shownDead = '';      // the dead letters drawn: unchanged rows are not rebuilt under a click

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function age(ms) {
  if (typeof ms !== 'number' || ms < 0) return '-';
  if (ms < 60000) return Math.round(ms / 1000) + 's';
  if (ms < 3600000) return Math.round(ms / 60000) + 'm';
  if (ms < 86400000) return (ms / 3600000).toFixed(1) + 'h';
  return (ms / 86400000).toFixed(1) + 'd';
}

// only http(s) URLs become image sources or links
function safeUrl(u) {
  if (typeof u !== 'string') return null;
  try {
    const p = new URL(u);
    return p.protocol === 'http:' || p.protocol === 'https:' ? p.href : null;
  } catch (e) { return null; }
}

async function getJson(path) {
  const r = await fetch(API + path, { cache: 'no-store', credentials: 'same-origin' });
  if (!r.ok && r.status !== 404) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

async function post(path, body) {
  const r = await fetch(API + path, {
    method: 'POST', cache: 'no-store', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + token },
    body: JSON.stringify(body),
  });
  let j = null;
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((j && j.error) || ('HTTP ' + r.status));
  return j;
}

function say(text, bad) {
  const m = $('message');
  m.textContent = text;
  m.className = bad ? 'bad' : '';
}

const DEPTHS = [
  ['queue', 'queue'], ['processing', 'processing'], ['delayed', 'delayed (retry)'],
  ['pollDue', 'polling'], ['uncertain', 'uncertain'], ['dead', 'dead letters'],
  ['callbacks', 'callbacks'], ['results', 'results kept'],
];

function renderStats(s) {
  $('prefix').textContent = s.prefix;
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  const cards = $('depths');
  cards.replaceChildren();
  for (const [k, label] of DEPTHS) {
    const c = el('div', null, 'card' + ((k === 'dead' || k === 'uncertain') && s.depths[k] > 0 ? ' warn' : ''));
    const n = el('div', s.depths[k], 'n');
    n.id = 'depth-' + k;
    c.append(n, el('div', label, 'l'));
    cards.append(c);
  }
  $('rate-completed').textContent = s.rates.completedPerMin.toFixed(1);
  $('rate-failed').textContent = s.rates.failedPerMin.toFixed(1);
  $('rate-dead').textContent = s.rates.deadPerMin.toFixed(1);
  $('rate-bound').hidden = !s.rates.lowerBound;

  const p = s.pause || {};
  $('pause').hidden = !p.paused;
  if (p.paused) {
    $('pause-kind').textContent = p.kind || '';
    $('pause-since').textContent = p.since || '';
    $('pause-reason').textContent = p.reason || '';
    $('pause-left').textContent = p.remainingMs < 0 ? 'until lifted' : age(p.remainingMs) + ' left';
  }

  const tb = $('workers').tBodies[0];
  tb.replaceChildren();
  const ws = (s.workers || []).slice().sort((a, b) => String(a.consumer).localeCompare(String(b.consumer)));
  for (const w of ws) {
    const tr = el('tr');
    tr.append(el('td', w.consumer), el('td', w.alive ? 'yes' : 'NO', w.alive ? '' : 'bad'),
      el('td', w.jobId || '-'), el('td', w.type || '-'), el('td', w.state || '-'));
    tb.append(tr);
  }
  $('no-workers').hidden = (s.workers || []).length > 0;
  $('actions-off').hidden = !!s.actions;
  $('actions-on').hidden = !s.actions;
}

function deadQuery() {
  const q = new URLSearchParams({ limit: '100' });
  if ($('f-type').value) q.set('type', $('f-type').value);
  if ($('f-reason').value) q.set('reason', $('f-reason').value);
  if ($('f-older').value) q.set('olderThan', $('f-older').value);
  return 'dead?' + q.toString();
}

async function act(what, ref, jobId) {
  if (!token) { say('Paste the operator token first.', true); $('token').focus(); return; }
  try {
    const r = await post('dead/' + what, { ref: '@' + ref });
    const one = (r.results || [])[0] || {};
    shownDead = '';
    say(what + ' ' + (jobId || '@' + ref) + ': ' + (one.outcome || 'nothing selected') +
        (one.why ? ' — ' + one.why : ''), one.outcome === 'refused');
    refresh();
  } catch (e) { say(what + ' failed: ' + e.message, true); }
}

function renderDead(d, actions) {
  const filtered = $('f-type').value || $('f-reason').value || $('f-older').value;
  $('dead-count').textContent = '(' + d.shown + ' shown of ' +
    (filtered ? (d.matchedLowerBound ? 'at least ' : '') + d.matched + ' matching, of ' : '') +
    d.total + ')';
  const key = JSON.stringify([actions, (d.entries || []).map(e => e.ref)]);
  if (key === shownDead) { // same rows: only their ages move
    const rows = $('dead').tBodies[0].rows;
    (d.entries || []).forEach((e, i) => { if (rows[i]) rows[i].cells[1].textContent = age(e.ageMs); });
    return;
  }
  shownDead = key;
  const tb = $('dead').tBodies[0];
  tb.replaceChildren();
  for (const e of d.entries || []) {
    const tr = el('tr');
    tr.dataset.ref = e.ref;
    if (e.jobId) tr.dataset.job = e.jobId;
    const reason = el('td', e.reason, 'reason');
    const ref = el('td', '@' + e.ref, 'ref');
    const btns = el('td');
    if (actions) {
      const retry = el('button', 'Retry');
      retry.type = 'button';
      retry.className = 'retry';
      retry.disabled = !e.retryable;
      retry.title = e.retryable ? 'move it back to the queue' : (e.notRetryable || '');
      retry.addEventListener('click', () => act('retry', e.ref, e.jobId));
      const purge = el('button', 'Purge');
      purge.type = 'button';
      purge.className = 'purge';
      purge.addEventListener('click', () => {
        if (confirm('Delete this dead letter for good?')) act('purge', e.ref, e.jobId);
      });
      btns.append(retry, purge);
    }
    tr.append(ref, el('td', age(e.ageMs)), el('td', e.jobId || '-'), el('td', e.type || '-'),
      el('td', e.reasonClass), reason, btns);
    tb.append(tr);
  }
}

function renderCompletions(list) {
  const key = JSON.stringify(list.map(e => [e.jobId, e.taskId, e.status]));
  if (key === shownThumbs) return;
  shownThumbs = key;
  const box = $('completions');
  box.replaceChildren();
  for (const ev of list) {
    const t = el('div', null, 'thumb' + (ev.status === 'completed' ? '' : ' failed'));
    if (ev.jobId) t.dataset.job = ev.jobId;
    // our copy when the browser can reach it (R2_PUBLIC_BASE_URL or the S3 URL; an fs
    // store's copies are file paths), else KIE's link, which expires
    const urls = [].concat(Array.isArray(ev.storedUrls) ? ev.storedUrls : [],
      Array.isArray(ev.resultUrls) ? ev.resultUrls : []);
    const src = urls.map(safeUrl).find(Boolean);
    if (src) {
      const a = el('a');
      a.href = src;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      const img = el('img');
      img.referrerPolicy = 'no-referrer';
      img.loading = 'lazy';
      img.alt = ev.jobId || '';
      img.src = src;
      a.append(img);
      t.append(a);
    }
    t.append(el('div', (ev.jobId || '-') + ' · ' + ev.status, 'cap'),
      el('div', ev.finishedAt || '', 'cap muted'));
    if (ev.error) t.append(el('div', ev.error, 'cap bad'));
    box.append(t);
  }
}

async function refresh() {
  try {
    const s = await getJson('stats');
    renderStats(s);
    const [d, c] = await Promise.all([getJson(deadQuery()), getJson('completions?limit=24')]);
    renderDead(d, !!s.actions);
    renderCompletions(Array.isArray(c) ? c : []);
    $('conn').hidden = true;
  } catch (e) {
    $('conn').hidden = false;
    $('conn').textContent = 'cannot reach the worker: ' + e.message;
  }
}

function init() {
  $('token').addEventListener('input', e => { token = e.target.value.trim(); });
  $('btn-pause').addEventListener('click', async () => {
    if (!token) { say('Paste the operator token first.', true); return; }
    try {
      const body = { reason: $('pause-why').value || 'paused from the operator page' };
      const dur = $('pause-for').value.trim();
      if (dur) body.for = dur; // the worker reads it as `kie pause --for` does
      await post('pause', body);
      say('The pool is paused' + (dur ? ' for ' + dur : ' until resumed') +
          ': runners take no new jobs; tasks already created are still collected.');
      refresh();
    } catch (e) { say('pause failed: ' + e.message, true); }
  });
  $('btn-resume').addEventListener('click', async () => {
    if (!token) { say('Paste the operator token first.', true); return; }
    try {
      const r = await post('resume', {});
      say(r.changed ? 'Resumed.' : 'It was not paused.');
      refresh();
    } catch (e) { say('resume failed: ' + e.message, true); }
  });
  for (const id of ['f-type', 'f-reason', 'f-older']) $(id).addEventListener('change', refresh);
  $('dead-filter').addEventListener('submit', e => { e.preventDefault(); refresh(); });
  refresh();
  setInterval(refresh, EVERY_MS);
}

document.addEventListener('DOMContentLoaded', init);
