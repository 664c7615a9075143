// app.js — the operator page: reads /admin/api/* every 2 s and renders the view the URL's
// hash names (#/, #/dead, #/queued, #/inflight, #/uncertain, #/audit, #/job/<id>).
// Everything that comes from Redis is producer-controlled, so it is only ever put into the
// page as text (textContent, attribute values through DOM properties), never as HTML.
// Charts are drawn by uPlot (vendored, pinned: scripts/fetch-uplot.sh).
'use strict';

const API = 'api/';
const EVERY_MS = 2000;
const TYPING_PAUSE_MS = 5000; // auto-refresh waits this long after the last keystroke,
                              // and while a list is open or a bulk action awaits its confirm
const PAGE = 50;
const RATES_EVERY_MS = 6000; // the charts' reads (api/rates)
const SLOT_SAMPLES = 50;
const HISTORY_EVERY_MS = 30000; // the history charts' reads (api/history)
const HISTORY_STEP = 10;        // the 48 h charts: one point per 10 minutes      // the createTask chart keeps this many samples (5 min at 6 s)

let token = '';          // the operator token: this tab's memory only
let operatorName = '';
let actions = false;
let shownThumbs = '';    // the completions already drawn (their images are not reloaded)
let shownDead = '';      // the dead letters drawn: unchanged rows are not rebuilt under a click
let lastKeyAt = 0;
let ratesAt = 0;
let historyAt = 0;
let busy = false;
const offsets = { dead: 0, queued: 0, inflight: 0, uncertain: 0, audit: 0 };
const charts = {};
const slots = { t: [], used: [], limit: [] };
let jobShown = { id: null, task: null };

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function age(ms) {
  if (typeof ms !== 'number' || !isFinite(ms)) return '-';
  const neg = ms < 0;
  ms = Math.abs(ms);
  let s;
  if (ms < 60000) s = Math.round(ms / 1000) + 's';
  else if (ms < 3600000) s = Math.round(ms / 60000) + 'm';
  else if (ms < 86400000) s = (ms / 3600000).toFixed(1) + 'h';
  else s = (ms / 86400000).toFixed(1) + 'd';
  return neg ? '-' + s : s;
}

// a time (epoch ms or ISO-8601) in the browser's zone, its UTC value on hover
function timeEl(v) {
  const d = typeof v === 'number' ? new Date(v) : (typeof v === 'string' ? new Date(v) : null);
  if (!d || isNaN(d.getTime())) return el('span', v === undefined || v === null ? '-' : v);
  const t = el('time', d.toLocaleString());
  t.dateTime = d.toISOString();
  t.title = d.toISOString().replace('T', ' ').replace('Z', ' UTC');
  return t;
}

function jobLink(id) {
  if (typeof id !== 'string' || !id) return el('span', '-');
  const a = el('a', id, 'ref');
  a.href = '#/job/' + encodeURIComponent(id);
  return a;
}

function td(content, cls) {
  const c = el('td', null, cls);
  if (content instanceof Node) c.append(content);
  else c.textContent = content === undefined || content === null ? '-' : String(content);
  return c;
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
  if (!r.ok && r.status !== 404) {
    let why = '';
    try { why = (await r.json()).error || ''; } catch (e) { /* not JSON */ }
    throw new Error(path.split('?')[0] + ': HTTP ' + r.status + (why ? ' — ' + why : ''));
  }
  return r.json();
}

async function post(path, body) {
  const headers = { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + token };
  if (operatorName) headers['X-Kie-Operator'] = operatorName;
  const r = await fetch(API + path, {
    method: 'POST', cache: 'no-store', credentials: 'same-origin', headers,
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

function needToken() {
  if (token) return false;
  say('Paste the operator token first.', true);
  $('token').focus();
  return true;
}

// ---- paging ----

function renderPager(id, view, total, shown) {
  const box = $(id);
  box.replaceChildren();
  const off = offsets[view];
  const last = Math.max(0, Math.floor((Math.max(total, 1) - 1) / PAGE) * PAGE);
  const mk = (label, aria, to, disabled) => {
    const b = el('button', label);
    b.type = 'button';
    b.setAttribute('aria-label', aria);
    b.disabled = disabled;
    b.addEventListener('click', () => { offsets[view] = to; shownDead = ''; refresh(); });
    return b;
  };
  box.append(mk('« first', 'first page', 0, off === 0),
    mk('‹ prev', 'previous page', Math.max(0, off - PAGE), off === 0),
    el('span', total ? (off + 1) + '–' + (off + shown) + ' of ' + total : 'none', 'range'),
    mk('next ›', 'next page', off + PAGE, off + PAGE >= total),
    mk('last »', 'last page', last, off >= last));
}

// ---- overview ----

const DEPTHS = [
  ['queue', 'queue'], ['processing', 'processing'], ['delayed', 'delayed (retry)'],
  ['pollDue', 'polling'], ['uncertain', 'uncertain'], ['dead', 'dead letters'],
  ['callbacks', 'callbacks'], ['results', 'results kept'],
];

function renderStats(s) {
  $('prefix').textContent = s.prefix;
  $('updated').replaceChildren('updated ', timeEl(Date.now()));
  const d = s.depths || {};
  $('nav-dead').textContent = d.dead || '';
  $('nav-queued').textContent = (d.queue || 0) + (d.delayed || 0) || '';
  $('nav-inflight').textContent = (d.pollDue || 0) + (d.polling || 0) || '';
  $('nav-uncertain').textContent = d.uncertain || '';
  const cards = $('depths');
  cards.replaceChildren();
  for (const [k, label] of DEPTHS) {
    const c = el('div', null, 'card' + ((k === 'dead' || k === 'uncertain') && d[k] > 0 ? ' warn' : ''));
    const n = el('div', d[k], 'n');
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
    $('pause-since').replaceChildren(timeEl(p.since || ''));
    $('pause-reason').textContent = p.reason || '';
    $('pause-left').textContent = p.remainingMs < 0 ? 'until lifted' : age(p.remainingMs) + ' left';
  }

  const tb = $('workers').tBodies[0];
  tb.replaceChildren();
  const ws = (s.workers || []).slice().sort((a, b) => String(a.consumer).localeCompare(String(b.consumer)));
  for (const w of ws) {
    const tr = el('tr');
    tr.append(td(w.consumer), td(w.alive ? 'yes' : 'NO', w.alive ? '' : 'bad'),
      td(jobLink(w.jobId)), td(w.type || '-'), td(w.state || '-'));
    tb.append(tr);
  }
  $('no-workers').hidden = (s.workers || []).length > 0;
  actions = !!s.actions;
  $('actions-off').hidden = actions;
  $('actions-on').hidden = !actions;
  $('dead-bulk').hidden = !actions;
}

function chartWidth(box) {
  return Math.max(200, Math.min(box.clientWidth || 300, 900));
}

function drawChart(name, opts, data) {
  const box = $('chart-' + name);
  if (typeof uPlot === 'undefined' || box.offsetParent === null) return;
  if (!charts[name]) {
    opts.width = chartWidth(box);
    opts.height = 200;
    charts[name] = new uPlot(opts, data, box);
  } else {
    charts[name].setData(data);
  }
}

function renderRates(r) {
  const pts = r.points || [];
  const data = [pts.map(p => p.t), pts.map(p => p.completed), pts.map(p => p.failed),
    pts.map(p => p.dead)];
  // what is drawn, for the tests and for anyone reading the page's source
  $('chart-throughput').dataset.points = JSON.stringify(
    pts.map(p => [p.minute, p.completed, p.failed, p.dead]));
  drawChart('throughput', {
    scales: { x: { time: true } },
    series: [{ label: 'time' },
      { label: 'completed', stroke: '#2e7d32', width: 2 },
      { label: 'failed', stroke: '#b3261e', width: 2 },
      { label: 'dead letters', stroke: '#7b3fa0', width: 2, dash: [6, 4] }],
    axes: [{ label: 'time (your zone)' }, { label: 'jobs per minute', size: 60 }],
  }, data);

  const c = r.createSlots || {};
  if (typeof c.used === 'number') {
    slots.t.push(Date.now() / 1000);
    slots.used.push(c.used);
    slots.limit.push(c.limit);
    for (const k of ['t', 'used', 'limit']) if (slots[k].length > SLOT_SAMPLES) slots[k].shift();
    $('chart-slots').dataset.points = JSON.stringify(slots.used.map((u, i) => [u, slots.limit[i]]));
    drawChart('slots', {
      // the last 5 minutes, whatever the samples so far; 0 to above the limit
      scales: { x: { time: true, range: () => {
        const now = Date.now() / 1000;
        return [now - SLOT_SAMPLES * RATES_EVERY_MS / 1000, now + 1];
      } },
        y: { range: (u, lo, hi) => [0, Math.max(hi, c.limit) * 1.1] } },
      series: [{ label: 'time' },
        { label: 'calls in the last ' + Math.round(c.windowMs / 1000) + ' s', stroke: '#1f5fa8', width: 2 },
        { label: 'limit', stroke: '#b3261e', width: 1, dash: [4, 4] }],
      axes: [{ label: 'time (your zone)' }, { label: 'createTask calls', size: 70 }],
    }, [slots.t.slice(), slots.used.slice(), slots.limit.slice()]);
  } else {
    $('chart-slots').textContent = 'No KIE account on this worker: nothing to draw.';
  }
}

// ---- history (the counters in Redis: 48 h by the minute, 90 days by the day) ----

function renderHistory(h, d) {
  const pts = h.points || [];
  const t = pts.map(p => p.t);
  const step = h.step || 1;
  $('chart-hist-throughput').dataset.points = JSON.stringify(
    pts.map(p => [p.t, p.completed, p.failed, p.dead, p.cancelled]));
  drawChart('hist-throughput', {
    scales: { x: { time: true } },
    series: [{ label: 'time' },
      { label: 'completed', stroke: '#2e7d32', width: 2 },
      { label: 'failed', stroke: '#b3261e', width: 2 },
      { label: 'dead letters', stroke: '#7b3fa0', width: 2, dash: [6, 4] },
      { label: 'cancelled', stroke: '#8a6d00', width: 1 }],
    axes: [{ label: 'time (your zone)' }, { label: 'jobs per ' + step + ' min', size: 60 }],
  }, [t, pts.map(p => p.completed), pts.map(p => p.failed), pts.map(p => p.dead),
    pts.map(p => p.cancelled)]);
  const sec = v => (typeof v === 'number' ? v / 1000 : null);
  $('chart-hist-latency').dataset.points = JSON.stringify(
    pts.map(p => [p.t, p.waitP50, p.waitP95, p.genP50, p.genP95]));
  drawChart('hist-latency', {
    scales: { x: { time: true } },
    series: [{ label: 'time' },
      { label: 'wait p50', stroke: '#1f5fa8', width: 2, spanGaps: true, points: { show: true, size: 6 } },
      { label: 'wait p95', stroke: '#1f5fa8', width: 1, dash: [4, 4], spanGaps: true, points: { show: true, size: 6 } },
      { label: 'generation p50', stroke: '#2e7d32', width: 2, spanGaps: true, points: { show: true, size: 6 } },
      { label: 'generation p95', stroke: '#2e7d32', width: 1, dash: [4, 4], spanGaps: true, points: { show: true, size: 6 } }],
    axes: [{ label: 'time (your zone)' }, { label: 'seconds (bucket bound)', size: 70 }],
  }, [t, pts.map(p => sec(p.waitP50)), pts.map(p => sec(p.waitP95)),
    pts.map(p => sec(p.genP50)), pts.map(p => sec(p.genP95))]);
  const lim = (h.createLimitPerMinute || 0) * step;
  $('chart-hist-created').dataset.points = JSON.stringify(
    pts.map(p => [p.t, p.created, p.refused, lim]));
  drawChart('hist-created', {
    scales: { x: { time: true } },
    series: [{ label: 'time' },
      { label: 'createTask calls that made a task', stroke: '#1f5fa8', width: 2 },
      { label: '429/455 refusals', stroke: '#b3261e', width: 2 },
      { label: "the account's limit", stroke: '#555', width: 1, dash: [4, 4] }],
    axes: [{ label: 'time (your zone)' }, { label: 'calls per ' + step + ' min', size: 70 }],
  }, [t, pts.map(p => p.created), pts.map(p => p.refused), pts.map(() => lim)]);
  if (d) {
    const dp = d.points || [];
    const budget = d.dailyCreditBudget || 0;
    $('chart-hist-credits').dataset.points = JSON.stringify(
      dp.map(p => [p.t, p.credits, budget]));
    drawChart('hist-credits', {
      scales: { x: { time: true } },
      series: [{ label: 'day (UTC)' },
        { label: 'credits spent', stroke: '#1f5fa8', width: 2 },
        { label: budget ? 'daily budget' : 'no daily budget', stroke: '#b3261e', width: 1, dash: [4, 4] }],
      axes: [{ label: 'day (UTC, your zone)' }, { label: 'credits per day', size: 70 }],
    }, [dp.map(p => p.t), dp.map(p => p.credits), dp.map(() => (budget || null))]);
  }
}

function renderCompletions(list) {
  const key = JSON.stringify(list.map(e => [e.jobId, e.taskId, e.status]));
  if (key === shownThumbs) return;
  shownThumbs = key;
  const box = $('completions');
  box.replaceChildren();
  for (const ev of list) box.append(thumb(ev));
}

function thumb(ev) {
  const t = el('div', null, 'thumb' + (ev.status === 'completed' ? '' : ' failed'));
  if (ev.jobId) t.dataset.job = ev.jobId;
  // our copy when the browser can reach it (R2_PUBLIC_BASE_URL or the S3 URL; an fs
  // store's copies are file paths), else KIE's link, which expires
  const urls = [].concat(Array.isArray(ev.storedUrls) ? ev.storedUrls : [],
    Array.isArray(ev.resultUrls) ? ev.resultUrls : []);
  const src = urls.map(safeUrl).find(Boolean);
  if (src) t.append(imageLink(src, ev.jobId || ''));
  const cap = el('div', null, 'cap');
  cap.append(jobLink(ev.jobId), ' · ' + ev.status);
  t.append(cap);
  const when = el('div', null, 'cap muted');
  when.append(timeEl(ev.finishedAt || ''));
  t.append(when);
  if (ev.error) t.append(el('div', ev.error, 'cap bad'));
  return t;
}

function imageLink(src, alt) {
  const a = el('a');
  a.href = src;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  const img = el('img');
  img.referrerPolicy = 'no-referrer';
  img.loading = 'lazy';
  img.alt = alt;
  img.src = src;
  a.append(img);
  return a;
}

// ---- dead letters ----

function deadFilter() {
  const f = {};
  if ($('f-type').value.trim()) f.type = $('f-type').value.trim();
  if ($('f-reason').value) f.reason = $('f-reason').value;
  if ($('f-older').value.trim()) f.olderThan = $('f-older').value.trim();
  return f;
}

function deadQuery() {
  const q = new URLSearchParams({ limit: String(PAGE), offset: String(offsets.dead) });
  const f = deadFilter();
  for (const k of Object.keys(f)) q.set(k, f[k]);
  return 'dead?' + q.toString();
}

async function act(what, ref, jobId) {
  if (needToken()) return;
  try {
    const r = await post('dead/' + what, { ref: '@' + ref });
    const one = (r.results || [])[0] || {};
    shownDead = '';
    say(what + ' ' + (jobId || '@' + ref) + ': ' + (one.outcome || 'nothing selected') +
        (one.why ? ' — ' + one.why : ''), one.outcome === 'refused');
    refresh();
  } catch (e) { say(what + ' failed: ' + e.message, true); }
}

function renderDead(d) {
  const f = deadFilter();
  const filtered = Object.keys(f).length > 0;
  const matched = filtered ? d.matched : d.total;
  $('dead-count').textContent = '(' + (filtered ? (d.matchedLowerBound ? 'at least ' : '') +
    d.matched + ' matching, of ' : '') + d.total + ')';
  renderPager('dead-pager', 'dead', matched, d.shown);
  const key = JSON.stringify([actions, offsets.dead, (d.entries || []).map(e => e.ref)]);
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
    const btns = el('td');
    if (actions) {
      const who = e.jobId || '@' + e.ref;
      const retry = el('button', 'Retry');
      retry.type = 'button';
      retry.className = 'retry';
      retry.disabled = !e.retryable;
      retry.setAttribute('aria-label', 'retry ' + who);
      retry.title = e.retryable ? 'move it back to the queue' : (e.notRetryable || '');
      retry.addEventListener('click', () => act('retry', e.ref, e.jobId));
      const purge = el('button', 'Purge');
      purge.type = 'button';
      purge.className = 'purge';
      purge.setAttribute('aria-label', 'purge ' + who);
      purge.addEventListener('click', () => {
        if (confirm('Delete this dead letter for good?')) act('purge', e.ref, e.jobId);
      });
      btns.append(retry, purge);
    }
    const when = td(age(e.ageMs));
    if (e.failedAt) when.title = e.failedAt + ' (' + new Date(e.failedAt).toLocaleString() + ')';
    tr.append(td('@' + e.ref, 'ref'), when, td(jobLink(e.jobId)), td(e.type || '-'),
      td(e.reasonClass), td(e.reason, 'reason'), btns);
    tb.append(tr);
  }
}

// "retry/purge all matching": a dry run first, whose count the operator confirms; the
// worker refuses the real one when more entries match by then (expect)
let pending = null;

async function bulk(what) {
  if (needToken()) return;
  const f = deadFilter();
  const body = Object.keys(f).length ? f : { all: true };
  try {
    const r = await post('dead/' + what, Object.assign({ dryRun: true }, body));
    if (!r.selected) { say('Nothing matches: no dead letter to ' + what + '.'); return; }
    pending = { what, body, expect: r.selected };
    const desc = Object.keys(f).length ? Object.entries(f).map(([k, v]) => k + ' ' + v).join(', ')
      : 'every dead letter (no filter)';
    $('confirm-text').textContent = 'Dry run of ' + what + ' on ' + desc + ': ' + r.selected +
      ' selected, ' + r.done + ' would be ' + (what === 'retry' ? 'retried' : 'purged') + ', ' +
      r.refused + ' refused. Go ahead?';
    $('btn-confirm').textContent = (what === 'retry' ? 'Retry ' : 'Purge ') + r.selected;
    $('confirm').hidden = false;
    $('btn-confirm').focus();
  } catch (e) { say(what + ' (dry run) failed: ' + e.message, true); }
}

async function confirmBulk() {
  const p = pending;
  pending = null;
  $('confirm').hidden = true;
  if (!p) return;
  try {
    const r = await post('dead/' + p.what, Object.assign({ expect: p.expect }, p.body));
    shownDead = '';
    say(p.what + ': ' + r.selected + ' selected, ' + r.done + ' done, ' + r.refused +
        ' refused, ' + r.gone + ' gone meanwhile.', r.refused > 0);
    refresh();
  } catch (e) { say(p.what + ' failed: ' + e.message, true); }
}

// ---- queued, in flight, uncertain, audit ----

function queuedQuery() {
  const q = new URLSearchParams({ from: $('q-from').value, limit: String(PAGE),
    offset: String(offsets.queued) });
  if ($('q-prio').value) q.set('priority', $('q-prio').value);
  if ($('q-group').value.trim()) q.set('group', $('q-group').value.trim());
  return 'queued?' + q.toString();
}

async function cancelJob(id) {
  if (needToken()) return;
  try {
    const r = await post('job/cancel', { jobId: id });
    const why = { cancelled: 'cancelled: it never reached KIE (a job.cancelled event was emitted)',
      started: 'not cancelled: its createTask was sent (KIE cannot cancel a task)',
      finished: 'not cancelled: it had finished', remembered: 'not seen yet: the cancel is remembered',
      reply_to_needed: 'not cancelled: retry (its replyTo changed)' };
    say(id + ': ' + (why[r.result] || r.result), r.result !== 'cancelled' && r.result !== 'remembered');
    refresh();
  } catch (e) { say('cancel ' + id + ' failed: ' + e.message, true); }
}

async function setGroup(group, what) {
  if (needToken()) return;
  const v = $('g-' + what + '-' + group);
  const n = v ? Number(v.value) : NaN;
  if (!Number.isInteger(n) || n < 0) { say(what + ' must be a whole number (0 removes it)', true); return; }
  try {
    const body = { group };
    body[what] = n;
    await post('group/' + what, body);
    say('group ' + group + ': ' + what + ' ' + (n ? 'set to ' + n : 'removed'));
    refresh();
  } catch (e) { say('group ' + what + ' failed: ' + e.message, true); }
}

function renderGroups(sum) {
  const prios = $('queued-prios');
  prios.replaceChildren();
  const byp = sum.queuedByPriority || {};
  for (let p = 9; p >= 0; p--) {
    if (!byp[p]) continue;
    const c = el('div', null, 'card');
    c.append(el('div', byp[p], 'n'), el('div', 'priority ' + p, 'l'));
    prios.append(c);
  }
  const ow = el('div', null, 'card');
  ow.append(el('div', typeof sum.oldestWaitMs === 'number' ? age(sum.oldestWaitMs) : '-', 'n'),
    el('div', 'oldest wait (next 100)', 'l'));
  prios.append(ow);
  // several accounts: each account's structure has its own line (and its own pace)
  const accts = Object.entries(sum.accounts || {});
  if (accts.length > 1) {
    for (const [name, a] of accts) {
      const c = el('div', null, 'card');
      c.append(el('div', (a.ready || 0) + (a.parked || 0) + (a.overBudget || 0), 'n'),
        el('div', 'account ' + name + ' (' + (a.delayed || 0) + ' delayed' +
          (a.overBudget ? ', ' + a.overBudget + ' over budget' : '') + ')', 'l'));
      prios.append(c);
    }
  }
  const tb = $('groups').tBodies[0];
  // not rebuilt while the operator edits a weight or a limit
  if (tb.contains(document.activeElement)) return;
  tb.replaceChildren();
  for (const g of sum.topGroups || []) {
    const tr = el('tr');
    const name = g.group === '(default)' ? '' : g.group;
    const acts = el('td');
    if (actions && name) {
      for (const what of ['weight', 'limit']) {
        const i = el('input');
        i.id = 'g-' + what + '-' + name;
        i.type = 'number';
        i.min = '0';
        i.size = 5;
        i.className = 'num';
        i.value = what === 'weight' ? g.weight : (g.limit || 0);
        i.setAttribute('aria-label', what + ' of group ' + name);
        const b = el('button', 'set ' + what);
        b.type = 'button';
        b.addEventListener('click', () => setGroup(name, what));
        acts.append(i, b);
      }
    }
    tr.append(td(g.group), td(g.queued), td(g.inFlight), td(g.weight),
      td(g.limit === null || g.limit === undefined ? 'none' : g.limit), acts);
    tb.append(tr);
  }
}

async function loadQueued() {
  const from = $('q-from').value;
  const d = await getJson(queuedQuery());
  const c = d.counts || {};
  $('queued-count').textContent = '(' + c.ready + ' ready, ' + c.delayed + ' delayed, ' +
    c.parked + ' parked at a group limit' + (c.notRouted ? ', ' + c.notRouted + ' not yet routed' : '') +
    (typeof d.pace === 'number' ? '; ' + d.pace.toFixed(2) + ' picks/s' : '') + ')';
  if (d.summary) renderGroups(d.summary);
  renderPager('queued-pager', 'queued', d.matched, d.entries.length);
  const tb = $('queued').tBodies[0];
  const several = Object.keys(d.accounts || {}).length > 1;
  for (const h of document.querySelectorAll('#queued th.q-acct')) h.hidden = !several;
  tb.replaceChildren();
  for (const e of d.entries) {
    const tr = el('tr');
    if (e.jobId) tr.dataset.job = e.jobId;
    const when = typeof e.dueAt === 'number' ? timeEl(e.dueAt)
      : (typeof e.eta === 'number' ? timeEl(e.eta) : '-');
    const acts = el('td');
    if (actions && e.jobId && from !== 'queue') {
      const b = el('button', 'Cancel');
      b.type = 'button';
      b.className = 'cancel-job';
      b.setAttribute('aria-label', 'cancel job ' + e.jobId);
      b.addEventListener('click', () => cancelJob(e.jobId));
      acts.append(b);
    }
    tr.append(td(e.position), td(jobLink(e.jobId)));
    if (several) tr.append(td(e.account || '-'));
    tr.append(td(e.priority), td(e.group),
      td(e.type || '-'), td(typeof e.queuedAt === 'number' ? age(d.now - e.queuedAt) : '-'),
      td(when), acts);
    tb.append(tr);
  }
}

async function loadInflight() {
  const d = await getJson('inflight?limit=' + PAGE + '&offset=' + offsets.inflight);
  $('inflight-count').textContent = '(' + d.total + ' polled' +
    (d.notPromoted ? ', ' + d.notPromoted + ' not yet promoted' : '') + ')';
  renderPager('inflight-pager', 'inflight', d.total, d.entries.length);
  const tb = $('inflight').tBodies[0];
  tb.replaceChildren();
  for (const e of d.entries) {
    const tr = el('tr');
    if (e.jobId) tr.dataset.job = e.jobId;
    const next = td(e.nextPollInMs > 0 ? 'in ' + age(e.nextPollInMs) : 'due / polling now');
    next.title = new Date(e.nextPollAt).toISOString();
    tr.append(td(e.taskId, 'ref'), td(jobLink(e.jobId)), td(e.type || '-'), td(age(e.ageMs)),
      td(e.polls === null ? 0 : e.polls), next, td(e.kieState || e.status || 'waiting'));
    tb.append(tr);
  }
}

async function loadUncertain() {
  const d = await getJson('uncertain?limit=' + PAGE + '&offset=' + offsets.uncertain);
  $('uncertain-count').textContent = '(' + d.total + ')';
  renderPager('uncertain-pager', 'uncertain', d.total, d.entries.length);
  const tb = $('uncertain').tBodies[0];
  tb.replaceChildren();
  for (const e of d.entries) {
    const tr = el('tr');
    if (e.jobId) tr.dataset.job = e.jobId;
    tr.append(td(jobLink(e.jobId)), td(e.type || '-'), td(timeEl(e.windowEndsAt)),
      td(age(e.leftMs)), td(e.attempts), td(e.error || '-', 'reason'));
    tb.append(tr);
  }
}

function auditWhat(e) {
  const parts = [];
  if (e.filter && typeof e.filter === 'object') {
    const f = Object.entries(e.filter).map(([k, v]) => k + '=' + v).join(' ');
    parts.push(f || 'all');
  }
  if (typeof e.selected === 'number') {
    parts.push(e.done + ' done of ' + e.selected + ' selected' +
      (e.refused ? ', ' + e.refused + ' refused' : '') + (e.gone ? ', ' + e.gone + ' gone' : ''));
  }
  if (typeof e.group === 'string') parts.push('group ' + e.group);
  if ('budget' in e) parts.push(e.budget ? 'budget ' + e.budget + ' credits a day' : 'budget removed');
  if (typeof e.weight === 'number') parts.push('weight ' + e.weight);
  if (typeof e.limit === 'number') parts.push('limit ' + e.limit);
  if (typeof e.reason === 'string') parts.push('reason: ' + e.reason);
  if ('forMs' in e) parts.push(e.forMs ? 'for ' + age(e.forMs) : 'until resumed');
  if (e.changed === false) parts.push('(no change)');
  return parts.join(' · ');
}

async function loadAudit() {
  const d = await getJson('audit?limit=' + PAGE + '&offset=' + offsets.audit);
  $('audit-count').textContent = '(' + d.total + ')';
  renderPager('audit-pager', 'audit', d.total, d.entries.length);
  const tb = $('audit').tBodies[0];
  tb.replaceChildren();
  for (const e of d.entries) {
    const tr = el('tr');
    if (typeof e !== 'object' || e === null) {
      tr.append(td(String(e)));
    } else {
      tr.append(td(timeEl(e.at)), td(e.who), td(e.from), td(e.action), td(auditWhat(e), 'reason'));
    }
    tb.append(tr);
  }
}

// ---- spend, budgets, accounts ----

function credits(n) {
  return typeof n === 'number' && isFinite(n) ? (Math.round(n * 100) / 100).toString() : '-';
}

function used(spent, reserved, budget) {
  if (!(budget > 0)) return '-';
  return Math.round(100 * ((spent || 0) + (reserved || 0)) / budget) + '%';
}

function pauseText(p) {
  if (!p || typeof p !== 'object') return 'no';
  const left = typeof p.ttlMs === 'number' && p.ttlMs >= 0 ? ', ' + age(p.ttlMs) + ' left' : '';
  return 'yes (' + (p.kind || '?') + ')' + (p.reason ? ': ' + p.reason : '') + left;
}

function spendCard(n, label, id, warn) {
  const c = el('div', null, 'card' + (warn ? ' warn' : ''));
  const v = el('div', n, 'n');
  v.id = id;
  c.append(v, el('div', label, 'l'));
  return c;
}

async function setBudget(e) {
  e.preventDefault();
  if (needToken()) return;
  const group = $('b-group').value.trim();
  const n = Number($('b-credits').value);
  if (!group || $('b-credits').value === '' || !(n >= 0)) {
    say('give a group and a number of credits (0 removes the budget)', true);
    return;
  }
  try {
    const r = await post('group/budget', { group, credits: n });
    say('group ' + group + ': ' + (n ? 'budget ' + n + ' credits a day' : 'budget removed') +
      (r.woken ? ' (' + r.woken + ' waiting jobs let go)' : ''));
    $('b-credits').value = '';
    refresh();
  } catch (err) { say('budget failed: ' + err.message, true); }
}

async function loadSpend() {
  const s = await getJson('spend');
  const d = String(s.day || '');
  $('spend-day').textContent = '(' + d.slice(0, 4) + '-' + d.slice(4, 6) + '-' + d.slice(6, 8) + ', UTC)';
  $('nav-spend').textContent = s.overBudget || '';
  const cards = $('spend-cards');
  cards.replaceChildren();
  const b = s.budget > 0 ? s.budget : 0;
  const u = (s.spent || 0) + (s.reserved || 0);
  cards.append(spendCard(credits(s.total), 'credits spent (' + s.tasks + ' tasks)', 'spend-total'),
    spendCard(b ? credits(b) : 'none', 'pool budget a day', 'spend-budget'),
    spendCard(credits(s.spent), 'spent against it', 'spend-spent'),
    spendCard(credits(s.reserved), 'reserved (tasks in flight)', 'spend-reserved'),
    spendCard(used(s.spent, s.reserved, b), 'of the budget used', 'spend-used', b && u >= 0.9 * b),
    spendCard(s.overBudget, 'jobs over_budget', 'spend-over', s.overBudget > 0));
  $('spend-meter').hidden = !b;
  if (b) {
    $('spend-meter').setAttribute('title', credits(s.spent) + ' spent + ' + credits(s.reserved) +
      ' reserved of ' + credits(b));
    $('spend-meter-spent').style.width = Math.min(100, 100 * (s.spent || 0) / b) + '%';
    $('spend-meter-reserved').style.width = Math.max(0, Math.min(100 - Math.min(100, 100 * (s.spent || 0) / b), 100 * (s.reserved || 0) / b)) + '%';
  }
  $('spend-note').textContent = b ? '' : 'No pool budget: set KIE_DAILY_CREDIT_BUDGET on the workers.';

  const at = $('accounts').tBodies[0];
  at.replaceChildren();
  const pool = s.pause;
  for (const [alias, a] of Object.entries(s.accounts || {})) {
    const tr = el('tr');
    tr.dataset.account = alias;
    const own = a.pause && typeof a.pause === 'object';
    const paused = own ? pauseText(a.pause) : (pool && typeof pool === 'object' ? 'pool: ' + pauseText(pool) : 'no');
    tr.append(td(alias), td(credits(a.spent)),
      td(a.balance === null || a.balance === undefined ? 'unknown' : credits(a.balance)),
      td(typeof a.balanceAt === 'number' ? timeEl(a.balanceAt) : '-'),
      td(paused, own || (pool && typeof pool === 'object') ? 'bad' : ''));
    at.append(tr);
  }

  const gt = $('spend-groups').tBodies[0];
  gt.replaceChildren();
  for (const g of s.topGroups || []) {
    const tr = el('tr');
    tr.append(td(g.group), td(credits(g.spent)),
      td(typeof g.budget === 'number' ? credits(g.budget) : 'none'),
      td(typeof g.reserved === 'number' ? credits(g.reserved) : '-'),
      td(used(g.spent, g.reserved, g.budget)));
    gt.append(tr);
  }

  const bt = $('budgets').tBodies[0];
  $('budget-form').hidden = !actions;
  if (!bt.contains(document.activeElement)) {
    bt.replaceChildren();
    for (const g of s.budgets || []) {
      const tr = el('tr');
      tr.append(td(g.group), td(credits(g.budget)), td(credits(g.spent)), td(credits(g.reserved)),
        td(used(g.spent, g.reserved, g.budget), (g.spent + g.reserved) >= 0.9 * g.budget ? 'bad' : ''));
      bt.append(tr);
    }
  }
  $('no-budgets').hidden = (s.budgets || []).length > 0;

  const wt = $('waiting').tBodies[0];
  wt.replaceChildren();
  $('waiting-count').textContent = '(' + (s.overBudget || 0) +
    ((s.waiting || []).length < (s.overBudget || 0) ? ', the first ' + s.waiting.length + ' shown' : '') + ')';
  // several accounts' structures hold jobs over budget: say whose each one is
  const wAccts = new Set((s.waiting || []).map(j => j.account)).size > 1;
  for (const h of document.querySelectorAll('#waiting th.w-acct')) h.hidden = !wAccts;
  for (const j of s.waiting || []) {
    const tr = el('tr');
    tr.append(td(jobLink(j.jobId)));
    if (wAccts) tr.append(td(j.account || '-'));
    tr.append(td(j.group === '' ? '(default)' : j.group), td(credits(j.estimate)));
    wt.append(tr);
  }
}

// ---- one job ----

const TIME_LABELS = {
  queuedAt: 'queued', createdAt: 'job record created', claimedAt: 'claimed',
  startedAt: 'task created at KIE (started)', updatedAt: 'last change', retryAt: 'retry due',
  retriedAt: 'retried by an operator', uncertainUntil: 'uncertain window ends',
  finishedAt: 'finished', lease: 'lease ends',
};

function pretty(v) {
  if (v === undefined || v === null) return '(none)';
  if (typeof v === 'string') {
    try { return JSON.stringify(JSON.parse(v), null, 2); } catch (e) { return v; }
  }
  return JSON.stringify(v, null, 2);
}

async function loadJob(id) {
  const j = await getJson('job?id=' + encodeURIComponent(id));
  if (jobShown.id !== id) { jobShown = { id, task: null }; $('job-record').textContent = ''; }
  $('job-id').textContent = id;
  $('job-status').textContent = j.status || 'unknown';
  $('job-status').className = 'pill ' + (j.status || 'unknown');
  const where = [];
  if (j.error && !j.job) where.push(j.error);
  if (j.status === 'unknown') where.push('Redis knows nothing of this job: never pushed, its records expired, or in the part of a long queue not scanned.');
  if (j.queue && j.queue.in) where.push('waits in ' + j.queue.in + (j.queue.dueAt ? ', due ' + new Date(j.queue.dueAt).toLocaleString() : ''));
  const sc = j.schedule;
  if (sc && typeof sc.position === 'number') {
    where.push('position ' + sc.position + ' at priority ' + sc.priority + ' in group ' +
      (sc.group || '(default)') + (typeof sc.eta === 'number' ? ', expected to start about ' +
      new Date(sc.eta).toLocaleString() : ''));
  }
  const cb = $('job-cancel');
  cb.hidden = !(actions && (j.state === 'queued' || j.state === 'delayed'));
  cb.onclick = () => cancelJob(id);
  if (typeof j.uncertainLeftMs === 'number') where.push(age(j.uncertainLeftMs) + ' left in its uncertain window');
  $('job-where').textContent = where.join(' · ');

  const job = j.job || {};
  const task = j.task || null;
  const events = Array.isArray(j.events) ? j.events : [];
  const dead = Array.isArray(j.dead) ? j.dead : [];
  // the timeline: every time the records hold, oldest first
  const rows = [];
  const addT = (v, what) => {
    const ms = typeof v === 'number' ? v : (typeof v === 'string'
      ? (/^\d{10,}$/.test(v) ? Number(v) : Date.parse(v)) : NaN);
    if (isFinite(ms) && ms > 0) rows.push([ms, what]);
  };
  for (const [k, v] of Object.entries(job)) {
    if (k in TIME_LABELS || /At$/.test(k)) addT(v, TIME_LABELS[k] || k);
  }
  if (task) {
    addT(task.createdAt, 'task ' + (job.taskId || '') + ' created at KIE');
    addT(task.finalizedAt, 'task finalized' + (task.status ? ' (' + task.status + ')' : ''));
    if (typeof task.polls === 'number') rows.push([NaN, 'polled ' + task.polls + ' times']);
  }
  for (const ev of events) {
    if (ev && typeof ev === 'object') addT(ev.finishedAt, 'event: ' + ev.status + (ev.error ? ' — ' + ev.error : ''));
  }
  for (const dl of dead) {
    if (dl && typeof dl === 'object') addT(dl.failedAt, 'dead letter: ' + dl.reason);
  }
  rows.sort((a, b) => (isNaN(a[0]) ? Infinity : a[0]) - (isNaN(b[0]) ? Infinity : b[0]));
  const tb = $('job-timeline').tBodies[0];
  tb.replaceChildren();
  for (const [ms, what] of rows) {
    const tr = el('tr');
    tr.append(td(isNaN(ms) ? '-' : timeEl(ms)), td(what));
    tb.append(tr);
  }

  const facts = $('job-facts');
  facts.replaceChildren();
  for (const k of ['state', 'type', 'attempts', 'error', 'owner', 'workerId', 'epoch', 'mayHaveTask', 'replyTo', 'callback']) {
    if (job[k] === undefined) continue;
    facts.append(el('dt', k), el('dd', typeof job[k] === 'object' ? JSON.stringify(job[k]) : job[k]));
  }
  if (!facts.childNodes.length) facts.append(el('dd', 'no job record (not claimed yet, or expired)'));

  let desc = j.descriptor;
  if (!desc) {
    const withRaw = dead.find(d => d && typeof d.raw === 'string');
    if (withRaw) desc = withRaw.raw;
  }
  $('job-descriptor').textContent = desc ? pretty(desc)
    : '(not kept: ' + (j.queue && j.queue.in ? 'it waits in the ' + j.queue.in + '; the Queued view lists it' : 'the job record holds no descriptor') + ')';
  $('job-task-id').textContent = job.taskId || '';
  $('job-task').textContent = task ? pretty(task) : '(no task)';
  $('job-events').textContent = events.length ? pretty(events) : '(none kept)';
  $('job-dead').textContent = dead.length ? pretty(dead) : '(none)';

  // stored copies and results: the events', the task's copies, the record's
  const urls = new Set();
  for (const ev of events) for (const k of ['storedUrls', 'resultUrls']) if (Array.isArray(ev[k])) ev[k].forEach(u => urls.add(u));
  if (task) for (const [k, v] of Object.entries(task)) if (/^copy:\d+$/.test(k)) urls.add(v);
  const copies = $('job-copies');
  copies.replaceChildren();
  for (const u of urls) {
    const s = safeUrl(u);
    const box = el('div', null, 'thumb');
    if (s) box.append(imageLink(s, id));
    box.append(el('div', u, 'cap'));
    copies.append(box);
  }
  if (!urls.size) copies.append(el('p', '(none)', 'muted'));

  if (job.taskId && jobShown.task !== job.taskId) {
    jobShown.task = job.taskId;
    const r = await getJson('record?task=' + encodeURIComponent(job.taskId));
    $('job-record').textContent = r.record ? pretty(r.record)
      : (r.error ? 'cannot read it: ' + r.error : '(no record in the ' + (r.store || '') + ' store)');
    if (r.record && Array.isArray(r.record.resultUrls) && !urls.size) {
      copies.replaceChildren();
      for (const u of r.record.resultUrls) {
        const s = safeUrl(u);
        const box = el('div', null, 'thumb');
        if (s) box.append(imageLink(s, id));
        box.append(el('div', u, 'cap'));
        copies.append(box);
      }
    }
  } else if (!job.taskId) {
    $('job-record').textContent = '(no task: no record)';
  }
}

// ---- routing and refresh ----

function route() {
  const h = location.hash || '#/';
  const m = /^#\/job\/(.+)$/.exec(h);
  if (m) return { view: 'job', id: decodeURIComponent(m[1]) };
  const v = h.slice(2) || 'overview';
  return { view: ['dead', 'queued', 'inflight', 'uncertain', 'spend', 'audit'].includes(v) ? v : 'overview' };
}

function showView() {
  const r = route();
  for (const s of document.querySelectorAll('section.view')) s.hidden = s.id !== 'view-' + r.view;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === r.view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  return r;
}

// the operator is typing or choosing: a refresh would move what they act on
function typing() {
  const a = document.activeElement;
  const choosing = a && a.tagName === 'SELECT';
  return choosing || Date.now() - lastKeyAt < TYPING_PAUSE_MS || !$('confirm').hidden;
}

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const r = showView();
    const s = await getJson('stats');
    renderStats(s);
    if (r.view === 'overview') {
      // the per-minute chart moves slowly: its counts are read every RATES_EVERY_MS (a
      // scan of up to 2 x 2000 entries in Redis), the rest every refresh
      const fresh = Date.now() - ratesAt >= RATES_EVERY_MS;
      const [c, rates] = await Promise.all([getJson('completions?limit=24'),
        fresh ? getJson('rates?minutes=15') : null]);
      renderCompletions(Array.isArray(c) ? c : []);
      if (rates) { ratesAt = Date.now(); renderRates(rates); }
      if (Date.now() - historyAt >= HISTORY_EVERY_MS) {
        const [h, d] = await Promise.all([getJson('history?minutes=2880&step=' + HISTORY_STEP),
          getJson('history?days=30')]);
        historyAt = Date.now();
        renderHistory(h, d);
      }
    } else if (r.view === 'dead') {
      renderDead(await getJson(deadQuery()));
    } else if (r.view === 'queued') {
      await loadQueued();
    } else if (r.view === 'inflight') {
      await loadInflight();
    } else if (r.view === 'uncertain') {
      await loadUncertain();
    } else if (r.view === 'audit') {
      await loadAudit();
    } else if (r.view === 'spend') {
      await loadSpend();
    } else if (r.view === 'job') {
      await loadJob(r.id);
    }
    $('conn').hidden = true;
  } catch (e) {
    $('conn').hidden = false;
    $('conn').textContent = 'cannot reach the worker: ' + e.message;
  } finally {
    busy = false;
  }
}

function tick() {
  if (typing()) {
    $('refresh-state').textContent = 'auto-refresh paused while you type';
    return;
  }
  $('refresh-state').textContent = 'auto-refresh every ' + EVERY_MS / 1000 + ' s';
  refresh();
}

function init() {
  $('token').addEventListener('input', e => { token = e.target.value.trim(); });
  $('operator-name').addEventListener('input', e => { operatorName = e.target.value.trim(); });
  document.addEventListener('keydown', () => { lastKeyAt = Date.now(); }, true);
  $('btn-refresh').addEventListener('click', () => { ratesAt = 0; historyAt = 0; refresh(); });
  $('search-form').addEventListener('submit', async e => {
    e.preventDefault();
    const term = $('search').value.trim();
    if (!term) return;
    try {
      const r = await getJson('search?q=' + encodeURIComponent(term));
      if (r.by === 'group') { // a group with jobs waiting: the queued view, filtered by it
        say('group ' + term + ': its queued jobs');
        $('q-group').value = term;
        offsets.queued = 0;
        location.hash = '#/queued';
        $('search').blur();
        return;
      }
      if (!r.jobId) throw new Error(r.error || 'not found');
      say(r.by === 'task' || r.by === 'event' ? 'task ' + term + ' belongs to job ' + r.jobId : '');
      location.hash = '#/job/' + encodeURIComponent(r.jobId);
      $('search').blur();
    } catch (err) { say('search: ' + err.message, true); }
  });
  $('btn-pause').addEventListener('click', async () => {
    if (needToken()) return;
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
    if (needToken()) return;
    try {
      const r = await post('resume', {});
      say(r.changed ? 'Resumed.' : 'It was not paused.');
      refresh();
    } catch (e) { say('resume failed: ' + e.message, true); }
  });
  $('budget-form').addEventListener('submit', setBudget);
  $('btn-retry-all').addEventListener('click', () => bulk('retry'));
  $('btn-purge-all').addEventListener('click', () => bulk('purge'));
  $('btn-confirm').addEventListener('click', confirmBulk);
  $('btn-cancel').addEventListener('click', () => { pending = null; $('confirm').hidden = true; });
  for (const id of ['f-type', 'f-reason', 'f-older']) {
    $(id).addEventListener('change', () => { offsets.dead = 0; shownDead = ''; refresh(); });
  }
  $('dead-filter').addEventListener('submit', e => { e.preventDefault(); offsets.dead = 0; refresh(); });
  $('queued-filter').addEventListener('submit', e => { e.preventDefault(); offsets.queued = 0; refresh(); });
  for (const id of ['q-from', 'q-prio']) {
    $(id).addEventListener('change', () => { offsets.queued = 0; refresh(); });
  }
  window.addEventListener('hashchange', () => { shownDead = ''; ratesAt = 0; historyAt = 0; refresh(); });
  window.addEventListener('resize', () => {
    for (const [name, c] of Object.entries(charts)) {
      c.setSize({ width: chartWidth($('chart-' + name)), height: 200 });
    }
  });
  refresh();
  setInterval(tick, EVERY_MS);
}

document.addEventListener('DOMContentLoaded', init);
