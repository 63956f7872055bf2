// The migration console. Plain JavaScript against the admin API (/api/v1), no build step: the
// files are embedded in the strangler binary as they are here. Everything the page shows comes
// from the API's JSON (the shapes in src/api.rs); everything it changes goes through the API's
// mutations, with the token the operator typed, kept in this tab's sessionStorage only.
//
// Live updates are polling: the overview and a route's figures every 2 s, its history, report
// and diffs every 5 s (the history's step). Polls stop while the tab is hidden.
'use strict';

(function () {
  const API = '/api/v1';
  const TOKEN_KEY = 'strangler.admin-token';
  const FAST_MS = 2000;
  const SLOW_MS = 5000;
  // Endpoints of the cutover report fetched per poll: the busiest, in a size worth polling.
  const REPORT_PAGE = 50;

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path, options) {
    const opts = options || {};
    const method = opts.method || 'GET';
    // Says a change came from the console, in the log and the notifications.
    const headers = { 'X-Strangler-Client': 'console' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    let body;
    if (method !== 'GET') {
      // The API takes changes only as JSON: a foreign page cannot send that without asking first.
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body || {});
    }
    let resp;
    try {
      resp = await fetch(API + path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new ApiError(0, { error: 'the admin API did not answer (' + e.message + ')' });
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (_) {
      data = null;
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  // ---------------------------------------------------------------- small helpers

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k.startsWith('data-')) e.setAttribute(k, String(v));
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const $ = (sel, root) => (root || document).querySelector(sel);

  // Replace a node's children; absent ones (null, false) are left out, not written as text.
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  }

  function num(v, digits, unit) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    return v.toFixed(digits) + (unit || '');
  }

  function percent(v) {
    // Weights are whole percents or up to two decimals (0.5%).
    return (Math.round(v * 100) / 100).toString() + '%';
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return '–';
    const s = Math.round(ms / 1000);
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function value(v) {
    if (v === undefined) return '(absent)';
    return typeof v === 'string' ? v : JSON.stringify(v, null, 1);
  }

  function notice(text, kind) {
    const n = $('#notice');
    n.textContent = text;
    n.className = kind || 'ok';
    n.hidden = !text;
  }

  function failure(what, err) {
    if (err instanceof ApiError && err.status === 401) {
      notice(what + ': the admin API needs its token: ' + err.message, 'error');
      askToken(err.message);
      return;
    }
    const problems = err.body && err.body.problems && err.body.problems.length ? ' (' + err.body.problems.join('; ') + ')' : '';
    notice(what + ': ' + err.message + problems, 'error');
  }

  // ---------------------------------------------------------------- dialogs

  function confirmAction(text, danger) {
    const d = $('#confirm');
    $('#confirm-text').textContent = text;
    $('#confirm-ok').className = danger ? 'danger' : 'primary';
    d.returnValue = '';
    d.showModal();
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    });
  }

  let tokenAsked = null;
  function askToken(why) {
    if (tokenAsked) return tokenAsked;
    const d = $('#token-dialog');
    $('#token-why').textContent = why
      ? 'The admin API refused: ' + why
      : 'The admin API of this instance needs its token (admin.token or STRANGLER_ADMIN_TOKEN).';
    $('#token-input').value = '';
    d.returnValue = '';
    d.showModal();
    tokenAsked = new Promise((resolve) => {
      d.addEventListener('close', () => {
        tokenAsked = null;
        if (d.returnValue === 'ok' && $('#token-input').value.trim()) {
          sessionStorage.setItem(TOKEN_KEY, $('#token-input').value.trim());
          notice('');
          resolve(true);
          refreshNow();
        } else {
          if (d.returnValue === 'forget') sessionStorage.removeItem(TOKEN_KEY);
          resolve(false);
        }
      }, { once: true });
    });
    return tokenAsked;
  }

  // ---------------------------------------------------------------- polling and views

  const state = { view: null, polls: [], charts: [], sort: { key: 'name', dir: 1 }, filter: '', open: new Set() };

  function stopPolls() {
    for (const p of state.polls) clearTimeout(p.timer);
    state.polls = [];
  }

  // Run `fn` now and every `ms` while the view lasts; one call at a time.
  function poll(fn, ms) {
    const p = { timer: null, fn, ms, view: state.view };
    const run = async () => {
      if (state.view !== p.view) return;
      if (!document.hidden) await fn();
      if (state.view === p.view) p.timer = setTimeout(run, ms);
    };
    state.polls.push(p);
    p.run = run;
    run();
  }

  function refreshNow() {
    for (const p of state.polls) {
      clearTimeout(p.timer);
      p.run();
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refreshNow();
  });

  function stamp() {
    $('#updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  // The view failed to load: say why, and offer the token when that is the reason.
  function showLoadError(err) {
    const view = $('#view');
    const why = $('#need-token-why') || $('#load-error-why');
    if (why && why.dataset.message === err.message) return; // already said; keep the button still
    fill(view);
    if (err instanceof ApiError && err.status === 401) {
      view.append(el('section', { class: 'panel need-token', id: 'need-token' },
        el('h2', { text: 'This admin API needs its token' }),
        el('p', { id: 'need-token-why', 'data-message': err.message, text: 'The API answered: ' + err.message }),
        el('p', { class: 'muted', text: 'The console can show and change nothing without it.' }),
        el('button', { id: 'enter-token', class: 'primary', type: 'button', onclick: () => askToken(err.message) }, 'Enter token')));
    } else {
      view.append(el('section', { class: 'panel', id: 'load-error' },
        el('h2', { text: 'Cannot load this view' }),
        el('p', { id: 'load-error-why', 'data-message': err.message, text: err.message })));
    }
  }

  function route() {
    stopPolls();
    for (const c of state.charts) c.destroy();
    state.charts = [];
    notice('');
    const hash = location.hash || '#/';
    const m = hash.match(/^#\/route\/(.+)$/);
    state.view = hash;
    document.body.dataset.rendered = '';
    if (m) routePage(decodeURIComponent(m[1]));
    else overview();
  }

  // ---------------------------------------------------------------- the overview

  const COLUMNS = [
    { key: 'name', label: 'Route', get: (r) => r.name },
    { key: 'weight', label: 'Weight', num: true, get: (r) => r.weight },
    { key: 'legacy-rps', label: 'Legacy req/s', num: true, get: (r) => r.live.legacy.rps },
    { key: 'new-rps', label: 'New req/s', num: true, get: (r) => r.live.new.rps },
    { key: 'legacy-5xx', label: 'Legacy 5xx', num: true, get: (r) => r.live.legacy.error_rate },
    { key: 'new-5xx', label: 'New 5xx', num: true, get: (r) => r.live.new.error_rate },
    { key: 'legacy-p99', label: 'Legacy p99', num: true, get: (r) => r.live.legacy.p99_ms },
    { key: 'new-p99', label: 'New p99', num: true, get: (r) => r.live.new.p99_ms },
    { key: 'mismatch', label: 'Mismatch', num: true, get: (r) => r.live.mismatch_rate },
    { key: 'rollout', label: 'Rollout', get: (r) => (r.rollout ? r.rollout.status : '') },
  ];

  function rolloutText(r) {
    if (!r) return '–';
    return r.step ? `step ${r.step}/${r.steps.length} ${r.status.replace('_', ' ')}` : r.status;
  }

  function overview() {
    fill($('#crumbs'), el('a', { href: '#/' }, 'Routes'));
    const view = $('#view');
    let table = null;
    let last = null;
    poll(async () => {
      let answer;
      try {
        answer = await api('/routes');
      } catch (err) {
        showLoadError(err);
        table = null;
        return;
      }
      last = answer;
      if (!table) {
        fill(view);
        table = overviewFrame(view, () => last && renderRows(table, last));
      }
      renderRows(table, answer);
      renderRefused(answer.refused_reload);
      await renderFleet(answer);
      stamp();
      if (!document.body.dataset.rendered) {
        document.body.dataset.rendered = 'overview';
        performance.mark('strangler:overview-rendered');
      }
    }, FAST_MS);
  }

  function overviewFrame(view, rerender) {
    const filter = el('input', {
      type: 'search', id: 'filter', placeholder: 'Filter by route, host or path', value: state.filter,
      oninput: (e) => { state.filter = e.target.value; rerender(); },
    });
    const count = el('span', { id: 'route-count', class: 'muted' });
    const head = el('tr', {}, COLUMNS.map((c) => el('th', {
      class: 'sortable' + (c.num ? ' num' : ''), 'data-sort': c.key,
      onclick: () => {
        state.sort = { key: c.key, dir: state.sort.key === c.key ? -state.sort.dir : (c.num ? -1 : 1) };
        rerender();
      },
    }, c.label)));
    const tbody = el('tbody', { id: 'routes' });
    view.append(el('section', { class: 'panel bad-panel', id: 'refused', hidden: true }),
      el('section', { class: 'panel' },
      el('div', { class: 'toolbar' }, el('h1', { text: 'Routes' }), filter, count),
      el('table', {}, el('thead', {}, head), tbody),
      el('p', { class: 'muted small', id: 'window-note' })),
    el('section', { class: 'panel', id: 'fleet', hidden: true }));
    return { tbody, head, count };
  }

  // The last refused reload of the config file, until one is applied: the file on disk is not
  // what serves, and the page says so above everything else.
  function renderRefused(refused) {
    const box = $('#refused');
    if (!box) return;
    box.hidden = !refused;
    if (!refused) return;
    fill(box,
      el('h2', { class: 'bad', text: 'The last reload was refused' }),
      el('p', { id: 'refused-when', text: `${refused.file} at ${refused.at} (${refused.trigger}): nothing of it applied; the previous config keeps serving until the file is fixed.` }),
      el('ul', { id: 'refused-problems' }, refused.problems.map((p) => el('li', { 'data-key': p.key },
        (p.line ? `line ${p.line}: ` : ''), el('code', { text: p.key + (p.value ? ' = ' + p.value : '') }), ': ' + p.message))));
  }

  // The fleet, when this instance is in one (the routes answer says so): who drives the
  // rollouts, every instance with the revision of the routing document it serves (one behind
  // is marked), and each route's requests summed over the instances.
  async function renderFleet(answer) {
    const inFleet = answer.fleet;
    const box = $('#fleet');
    if (!box) return;
    box.hidden = !inFleet;
    if (!inFleet) return;
    let f;
    try {
      f = await api('/cluster');
    } catch (err) {
      fill(box, el('h2', {}, 'Fleet'), el('p', { class: 'bad' }, 'Cannot read the fleet: ' + err.message));
      return;
    }
    box.hidden = false;
    const latest = f.latest_revision === null ? '–' : String(f.latest_revision);
    fill(box,
      el('h2', {}, 'Fleet ', el('span', { id: 'fleet-etcd', class: 'badge ' + (f.connected ? 'ready' : 'down') }, f.connected ? 'etcd connected' : 'etcd unreachable')),
      el('p', { class: 'muted' }, `${f.key} is at revision ${latest}; this instance (${f.instance}) serves `
        + (f.revision === null ? 'nothing yet' : `revision ${f.revision}`) + (f.stale ? ', from its local cache (stale)' : '') + '.'),
      f.rejected ? el('p', { class: 'bad', id: 'fleet-rejected' }, `Revision ${f.rejected.revision} was refused: ${f.rejected.problems.join('; ')}`) : null,
      f.last_error && !f.connected ? el('p', { class: 'bad' }, f.last_error) : null,
      el('p', { id: 'fleet-leader' }, f.leader
        ? `Rollouts are driven by ${f.leader}${f.leads ? ' (this instance)' : ''}.`
        : 'No instance leads the rollouts now: they wait until one does.'),
      f.instances.length
        ? el('table', { id: 'instances' },
          el('thead', {}, el('tr', {}, ['Instance', 'Revision', 'Since', 'Proxy', 'Admin', ''].map((h) => el('th', {}, h)))),
          el('tbody', {}, f.instances.map((i) => el('tr', { 'data-instance': i.instance, class: i.behind ? 'gate-fail' : '' },
            el('td', {}, i.instance), el('td', { class: 'num', 'data-col': 'revision' }, i.revision === null ? '–' : String(i.revision)),
            el('td', { class: 'muted small' }, i.applied_at || '–'), el('td', { class: 'mono' }, i.proxy.join(', ')),
            el('td', { class: 'mono' }, i.admin),
            el('td', { 'data-col': 'lag' }, i.behind ? el('span', { class: 'badge down' }, `behind: etcd has ${latest}`) : el('span', { class: 'badge ready' }, 'current'))))))
        : el('p', { class: 'muted' }, 'No instance list while etcd is unreachable.'),
      (answer.fleet_totals || []).length
        ? el('table', { id: 'fleet-totals' },
          el('thead', {}, el('tr', {}, ['Route', 'Legacy', 'New', 'New 5xx', 'By instance (legacy / new)'].map((h) => el('th', {}, h)))),
          el('tbody', {}, answer.fleet_totals.map((t) => el('tr', { 'data-route': t.route },
            el('td', {}, t.route),
            el('td', { class: 'num', 'data-col': 'legacy' }, String(t.total.legacy.requests)),
            el('td', { class: 'num', 'data-col': 'new' }, String(t.total.new.requests)),
            el('td', { class: 'num' }, t.total.new.error_rate === null ? '–' : t.total.new.error_rate.toFixed(2) + '%'),
            el('td', { class: 'muted small' }, t.instances.map((i) => `${i.instance} ${i.legacy_requests} / ${i.new_requests}`).join(', '))))))
        : null);
  }

  function renderRows(table, answer) {
    const q = state.filter.trim().toLowerCase();
    let routes = answer.routes.filter((r) => !q || r.name.toLowerCase().includes(q)
      || r.path_prefix.toLowerCase().includes(q) || r.hosts.some((h) => h.toLowerCase().includes(q)));
    const col = COLUMNS.find((c) => c.key === state.sort.key) || COLUMNS[0];
    routes = routes.slice().sort((a, b) => {
      const x = col.get(a), y = col.get(b);
      if (x === y) return a.name.localeCompare(b.name);
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (typeof x === 'string' ? x.localeCompare(y) : x - y) * state.sort.dir;
    });
    for (const th of table.head.children) {
      th.classList.toggle('sorted-asc', th.dataset.sort === col.key && state.sort.dir > 0);
      th.classList.toggle('sorted-desc', th.dataset.sort === col.key && state.sort.dir < 0);
    }
    const plural = (n) => (n === 1 ? 'route' : 'routes');
    table.count.textContent = routes.length === answer.routes.length
      ? `${answer.routes.length} ${plural(answer.routes.length)}` : `${routes.length} of ${answer.routes.length} ${plural(answer.routes.length)}`;
    $('#window-note').textContent = `Live figures over the last ${answer.window_seconds} s; `
      + 'latency is the time to the upstream\'s first byte.';
    fill(table.tbody, ...routes.map((r) => {
      const l = r.live.legacy, n = r.live.new;
      const hot = (v, limit) => (v !== null && v > limit ? 'num bad' : 'num');
      return el('tr', { class: 'route-row', 'data-route': r.name },
        el('td', { 'data-col': 'name' },
          el('a', { href: '#/route/' + encodeURIComponent(r.name) }, r.name),
          el('span', { class: 'muted small where' }, (r.hosts.length ? r.hosts.join(', ') + ' ' : '') + r.path_prefix),
          r.new_pool_down ? el('span', { class: 'badge down', title: 'every address of the new pool is down' }, 'new down') : null),
        el('td', { class: 'num', 'data-col': 'weight' },
          el('span', { class: 'split', title: `${percent(r.weight)} of requests to new` },
            el('span', { 'data-w': r.weight })), el('span', { class: 'pct' }, percent(r.weight))),
        el('td', { class: 'num legacy', 'data-col': 'legacy-rps', 'data-requests': l.requests, title: `${l.requests} requests` }, num(l.rps, 1)),
        el('td', { class: 'num new', 'data-col': 'new-rps', 'data-requests': n.requests, title: `${n.requests} requests` }, num(n.rps, 1)),
        el('td', { class: hot(l.error_rate, 1), 'data-col': 'legacy-5xx' }, num(l.error_rate, 1, '%')),
        el('td', { class: hot(n.error_rate, Math.max(1, l.error_rate || 0)), 'data-col': 'new-5xx' }, num(n.error_rate, 1, '%')),
        el('td', { class: 'num', 'data-col': 'legacy-p99' }, num(l.p99_ms, 1, ' ms')),
        el('td', { class: 'num', 'data-col': 'new-p99' }, num(n.p99_ms, 1, ' ms')),
        el('td', { class: hot(r.live.mismatch_rate, 0), 'data-col': 'mismatch' }, num(r.live.mismatch_rate, 1, '%')),
        el('td', { 'data-col': 'rollout' }, r.rollout
          ? el('span', { class: 'badge ' + r.rollout.status }, rolloutText(r.rollout)) : '–'));
    }));
    // The split bars' widths: set through the CSSOM (the page's policy allows no inline style).
    for (const bar of table.tbody.querySelectorAll('[data-w]')) bar.style.width = bar.dataset.w + '%';
  }

  // ---------------------------------------------------------------- a route's page

  function routePage(name) {
    fill($('#crumbs'), el('a', { href: '#/' }, 'Routes'), ' / ', el('span', { text: name }));
    const view = $('#view');
    const page = { name, frame: null, route: null, report: null, diffs: null, history: null };
    poll(async () => {
      try {
        page.route = await api('/routes/' + encodeURIComponent(name));
      } catch (err) {
        showLoadError(err);
        page.frame = null;
        return;
      }
      if (!page.frame) {
        fill(view);
        page.frame = routeFrame(view, page);
      }
      renderRoute(page);
      stamp();
      if (!document.body.dataset.rendered) document.body.dataset.rendered = 'route';
    }, FAST_MS);
    poll(async () => {
      if (!page.frame) return;
      try {
        page.history = await api('/routes/' + encodeURIComponent(name) + '/history');
        renderCharts(page);
      } catch (err) {
        $('#charts-note').textContent = 'No history: ' + err.message;
      }
      if (!page.route || !page.route.shadow) return;
      try {
        const [report, diffs] = await Promise.all([
          api('/routes/' + encodeURIComponent(name) + '/report?limit=' + REPORT_PAGE),
          api('/routes/' + encodeURIComponent(name) + '/diffs?limit=50'),
        ]);
        page.report = report;
        page.diffs = diffs;
        renderEvidence(page);
      } catch (err) {
        fill($('#evidence-body'), el('p', { text: 'No cutover report: ' + err.message }));
      }
    }, SLOW_MS);
  }

  function routeFrame(view, page) {
    const r = page.route;
    const range = el('input', { type: 'range', id: 'weight-range', min: 0, max: 100, step: 1, value: r.weight });
    const field = el('input', { type: 'number', id: 'weight-input', min: 0, max: 100, step: 'any', value: r.weight });
    range.addEventListener('input', () => { field.value = range.value; });
    field.addEventListener('input', () => { range.value = field.value; });
    const apply = el('button', { id: 'weight-apply', type: 'button', class: 'primary', onclick: () => setWeight(page, field.value) }, 'Set weight');
    view.append(
      el('section', { class: 'panel' },
        el('h1', { id: 'route-title', text: r.name }),
        el('div', { class: 'muted', id: 'route-match' }),
        el('div', { class: 'cards', id: 'cards' }),
        el('div', { class: 'weight-form' },
          el('strong', {}, 'Weight to new: '), el('span', { id: 'weight-now', class: 'mono' }),
          range, field, el('span', {}, '%'), apply)),
      el('section', { class: 'panel', id: 'charts-panel' },
        el('h2', { text: 'The last 15 minutes' }),
        el('p', { class: 'muted small', id: 'charts-note' }),
        el('div', { class: 'charts', id: 'charts' })),
      el('section', { class: 'panel', id: 'rollout', hidden: true }),
      el('section', { class: 'panel', id: 'evidence', hidden: true },
        el('h2', {}, 'Cutover evidence ', el('button', { type: 'button', id: 'report-reset', onclick: () => resetReport(page) }, 'Reset evidence')),
        el('div', { id: 'evidence-body' }, el('p', { class: 'muted', text: 'Loading the report…' }))),
      el('section', { class: 'panel', id: 'pools' }));
    return true;
  }

  function renderRoute(page) {
    const r = page.route;
    $('#route-match').textContent = (r.hosts.length ? 'hosts ' + r.hosts.join(', ') + ', ' : 'any host, ')
      + 'paths under ' + r.path_prefix + (r.sticky ? ', sticky by ' + r.sticky : ', not sticky')
      + (r.failover ? ', failover to legacy on' : '');
    $('#weight-now').textContent = percent(r.weight);
    const l = r.live.legacy, n = r.live.new;
    const card = (label, text, cls) => el('div', { class: 'card' }, el('div', { class: 'label', text: label }), el('div', { class: 'value ' + (cls || ''), text }));
    fill($('#cards'),
      card('Requests/s legacy · new', `${num(l.rps, 1)} · ${num(n.rps, 1)}`),
      card('5xx legacy · new', `${num(l.error_rate, 1, '%')} · ${num(n.error_rate, 1, '%')}`, n.error_rate > Math.max(1, l.error_rate || 0) ? 'bad' : ''),
      card('p50 legacy · new', `${num(l.p50_ms, 1)} · ${num(n.p50_ms, 1)} ms`),
      card('p99 legacy · new', `${num(l.p99_ms, 1)} · ${num(n.p99_ms, 1)} ms`),
      card('Mismatch (significant)', num(r.live.mismatch_rate, 1, '%') + ` of ${r.live.shadow_compared}`, r.live.mismatch_rate > 0 ? 'bad' : ''),
      ...(r.new_pool_down ? [card('New pool', 'every address down', 'bad')] : []));
    renderRollout(page);
    $('#evidence').hidden = !r.shadow;
    const pools = $('#pools');
    fill(pools, el('h2', { text: 'Upstreams' }), el('table', {}, el('tbody', {},
      ['legacy', 'new'].map((side) => {
        const p = r.sides[side];
        return el('tr', {},
          el('th', { class: side }, side),
          el('td', {}, p.upstream + (p.tls ? ' (TLS)' : '')),
          el('td', {}, p.addresses.map((a) => el('span', { class: 'badge ' + (a.healthy ? 'ready' : 'down'), title: a.healthy ? 'healthy' : 'down' }, a.address)), ' '),
          el('td', { class: 'muted' }, p.health_check || 'no health check'));
      }))));
  }

  async function setWeight(page, raw) {
    const r = page.route;
    const to = Number(raw);
    if (raw === '' || !Number.isFinite(to) || to < 0 || to > 100) {
      notice(`A weight is a percent from 0 to 100, not "${raw}".`, 'error');
      return;
    }
    if (to === r.weight) {
      notice(`Route ${r.name} is already at ${percent(to)}.`, 'ok');
      return;
    }
    const paused = r.rollout && ['running', 'starting'].includes(r.rollout.status) ? ' Its rollout will pause.' : '';
    const ok = await confirmAction(`Set the weight of route ${r.name} from ${percent(r.weight)} to ${percent(to)}? `
      + `New will get ${percent(to)} of its requests at once.${paused}`);
    if (!ok) return;
    try {
      const changed = await api('/routes/' + encodeURIComponent(r.name) + '/weight', { method: 'PUT', body: { percent: to } });
      notice(`Route ${changed.route}: weight ${percent(changed.old)} → ${percent(changed.weight)}, saved to ${changed.persisted}`
        + (changed.rollout_paused ? '; its rollout is paused.' : '.'), 'ok');
      refreshNow();
    } catch (err) {
      failure(`The weight of ${r.name} was not changed`, err);
    }
  }

  // ---------------------------------------------------------------- charts

  const LEGACY = getComputedStyle(document.documentElement).getPropertyValue('--legacy').trim() || '#c2410c';
  const NEW = getComputedStyle(document.documentElement).getPropertyValue('--new').trim() || '#1d4ed8';

  const CHARTS = [
    { id: 'chart-rps', title: 'Requests/s', unit: '/s', series: [
      ['legacy', LEGACY, (s) => s.window.legacy.rps], ['new', NEW, (s) => s.window.new.rps]] },
    { id: 'chart-errors', title: '5xx rate', unit: '%', series: [
      ['legacy', LEGACY, (s) => s.window.legacy.error_rate], ['new', NEW, (s) => s.window.new.error_rate]] },
    { id: 'chart-latency', title: 'Latency p50 (dashed) and p99, all requests', unit: ' ms', series: [
      ['legacy p50', LEGACY, (s) => s.window.legacy.p50_ms, true], ['legacy p99', LEGACY, (s) => s.window.legacy.p99_ms],
      ['new p50', NEW, (s) => s.window.new.p50_ms, true], ['new p99', NEW, (s) => s.window.new.p99_ms]] },
    { id: 'chart-paired', title: 'Latency on the same shadowed requests, p50 (dashed) and p99', unit: ' ms', series: [
      ['legacy p50', LEGACY, (s) => s.shadowed && s.shadowed.legacy_p50_ms, true], ['legacy p99', LEGACY, (s) => s.shadowed && s.shadowed.legacy_p99_ms],
      ['new p50', NEW, (s) => s.shadowed && s.shadowed.new_p50_ms, true], ['new p99', NEW, (s) => s.shadowed && s.shadowed.new_p99_ms]] },
  ];

  // The span the server's history covers (180 samples of 5 s).
  const WINDOW_S = 15 * 60;

  function renderCharts(page) {
    const h = page.history;
    const samples = h.samples;
    $('#charts-note').textContent = samples.length
      ? `${samples.length} samples of ${h.step_seconds} s; legacy in orange, new in blue.`
      : `The first sample comes after ${h.step_seconds} s.`;
    const xs = samples.map((s) => Date.parse(s.at) / 1000);
    for (const spec of CHARTS) {
      if (spec.id === 'chart-paired' && !page.route.shadow) continue;
      const data = [xs, ...spec.series.map(([, , get]) => samples.map((s) => {
        const v = get(s);
        return v === undefined ? null : v;
      }))];
      let chart = state.charts.find((c) => c.root.parentElement && c.root.parentElement.id === spec.id);
      if (!chart) {
        const box = el('div', { class: 'chart', id: spec.id }, el('h3', { text: spec.title }));
        $('#charts').append(box);
        chart = new uPlot({
          // A first guess: the box's width settles only once the grid has laid out every chart,
          // and the observer below sizes the chart from it then and on every later change.
          width: chartWidth(box), height: CHART_HEIGHT,
          scales: {
            // Always the whole window the history holds, ending at the newest sample.
            x: { time: true, range: (u, min, max) => { const end = max || Date.now() / 1000; return [end - WINDOW_S, end]; } },
            y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
          },
          axes: [{}, { values: (u, ticks) => ticks.map((t) => +t.toPrecision(3) + spec.unit), size: 70 }],
          series: [{}, ...spec.series.map(([label, stroke, , dashed]) => ({
            label, stroke, width: 2, dash: dashed ? [6, 4] : undefined, spanGaps: false,
            value: (u, v) => (v === null ? '–' : v.toFixed(2) + spec.unit),
          }))],
        }, data, box);
        fitToPanel(chart, box);
        // What the chart draws, for a script or a test to read back: `#chart-errors`.chart.data.
        box.chart = chart;
        state.charts.push(chart);
      } else {
        chart.setData(data);
      }
    }
  }

  const CHART_HEIGHT = 200;

  function chartWidth(box) {
    return Math.max(200, Math.floor(box.clientWidth));
  }

  // A chart is as wide as its panel, whatever changed the panel: the grid placing a second
  // chart beside the first, the window, a scrollbar appearing. Sized once at creation, a chart
  // keeps the width of a grid that held it alone and spills under its neighbour.
  function fitToPanel(chart, box) {
    const observer = new ResizeObserver(() => {
      const width = chartWidth(box);
      if (width !== chart.width) chart.setSize({ width, height: CHART_HEIGHT });
    });
    observer.observe(box);
    const destroy = chart.destroy.bind(chart);
    chart.destroy = () => { observer.disconnect(); destroy(); };
  }

  // ---------------------------------------------------------------- rollout

  function renderRollout(page) {
    const box = $('#rollout');
    const ro = page.route.rollout;
    box.hidden = !ro;
    if (!ro) return;
    const lim = ro.limits;
    const w = ro.window;
    const gates = [
      ['Requests on new', w && w.new_requests, '≥ ' + lim.min_requests, w && w.new_requests >= lim.min_requests, (v) => String(v)],
      ['New 5xx rate', w && w.error_rate, '≤ ' + lim.max_error_rate + '%', w && (w.error_rate === null || w.error_rate <= lim.max_error_rate), (v) => num(v, 2, '%')],
      lim.max_mismatch_rate === null ? null
        : ['Mismatch rate', w && w.mismatch_rate, '≤ ' + lim.max_mismatch_rate + '% of ≥ ' + lim.min_comparisons, w && (w.mismatch_rate === null || w.mismatch_rate <= lim.max_mismatch_rate), (v) => num(v, 2, '%')],
      ['p99 new / legacy', w && w.latency_ratio,
        '≤ ' + lim.max_latency_ratio + '×' + (lim.max_latency_added_ms === null ? '' : ` or ≤ ${lim.max_latency_added_ms} ms more`),
        w && (w.latency_ratio === null || w.latency_ratio <= lim.max_latency_ratio
          || (lim.max_latency_added_ms !== null && w.latency_added_ms <= lim.max_latency_added_ms)),
        (v) => num(v, 2, '×') + (w.latency_added_ms === null ? '' : ` (${w.latency_added_ms >= 0 ? '+' : ''}${num(w.latency_added_ms, 1, ' ms')})`)],
    ].filter(Boolean);
    const left = ro.held_ms === null ? null : Math.max(0, lim.hold_ms - ro.held_ms);
    const active = ['running', 'starting', 'paused'].includes(ro.status);
    fill(box,
      el('h2', {}, 'Rollout ', el('span', { id: 'rollout-status', class: 'badge ' + ro.status }, ro.status.replace('_', ' '))),
      el('ol', { class: 'steps', id: 'rollout-steps' }, ro.steps.map((s, i) => el('li', {
        class: ro.step === i + 1 ? 'current' : (ro.step && i + 1 < ro.step ? 'done' : ''),
        title: `step ${i + 1}`,
      }, percent(s)))),
      el('p', { id: 'rollout-hold' }, holdText(ro, lim, left)),
      ro.waiting ? el('p', { class: 'muted', id: 'rollout-waiting', text: 'Waiting: ' + ro.waiting }) : null,
      ro.next_step_at ? el('p', { id: 'rollout-next', text: 'Next step not before ' + ro.next_step_at
        + (ro.schedule ? ` (${ro.schedule})` : '') + '.' }) : null,
      lim.windows || lim.freeze ? el('p', { class: 'muted small', id: 'rollout-schedule', text: scheduleText(lim) }) : null,
      ro.reason ? el('p', { id: 'rollout-reason' }, el('strong', {}, 'Reason: '), ro.reason) : null,
      ro.error ? el('p', { class: 'bad', text: 'Cannot write the weight: ' + ro.error }) : null,
      el('table', { id: 'gates' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Gate'), el('th', { class: 'num' }, 'This step'), el('th', { class: 'num' }, 'Limit'))),
        el('tbody', {}, gates.map(([label, v, limit, ok, fmt]) => el('tr', { class: w && !ok ? 'gate-fail' : '' },
          el('td', {}, label), el('td', { class: 'num' }, v === null || v === undefined ? '–' : fmt(v)), el('td', { class: 'num' }, limit))))),
      el('p', { class: 'muted small', text: `On failure: ${lim.on_failure}.` }),
      el('div', { class: 'actions' },
        el('button', { type: 'button', 'data-action': 'pause', disabled: ro.status !== 'running' && ro.status !== 'starting', onclick: () => rolloutAct(page, 'pause') }, 'Pause'),
        el('button', { type: 'button', 'data-action': 'resume', disabled: ro.status !== 'paused', onclick: () => rolloutAct(page, 'resume') }, 'Resume'),
        el('button', { type: 'button', class: 'danger', 'data-action': 'abort', disabled: !active, onclick: () => rolloutAct(page, 'abort') }, 'Abort')));
  }

  // When steps may pass, as configured.
  function scheduleText(lim) {
    const parts = [];
    if (lim.windows) parts.push('Steps pass only ' + lim.windows.join('; '));
    if (lim.freeze) parts.push('never during ' + lim.freeze.join('; '));
    return parts.join(', ') + '. A rollback never waits.';
  }

  // Where the rollout stands. A stopped one says since when, never a clock still running.
  function holdText(ro, lim, left) {
    if (!ro.step) return 'Not started.';
    const at = `Step ${ro.step} of ${ro.steps.length} (${percent(ro.step_weight)})`;
    if (ro.stopped_at) {
      return `${at}: ${ro.status.replace('_', ' ')} ${duration(ro.stopped_ms_ago)} ago (${ro.stopped_at}), `
        + `after holding ${duration(ro.held_ms)}.`;
    }
    return `${at}, held ${duration(ro.held_ms)} of ${duration(lim.hold_ms)}`
      + (ro.status === 'running' ? `: ${duration(left)} left.` : '.');
  }

  async function rolloutAct(page, action) {
    const name = page.route.name;
    if (action === 'abort') {
      const ok = await confirmAction(`Abort the rollout of route ${name}? The weight goes back to where the rollout started and stays there.`, true);
      if (!ok) return;
    }
    try {
      const acted = await api('/routes/' + encodeURIComponent(name) + '/rollout/' + action, { method: 'POST' });
      notice(`Rollout of ${name}: ${acted.rollout.status.replace('_', ' ')}.`, 'ok');
      refreshNow();
    } catch (err) {
      failure(`Rollout ${action} of ${name} failed`, err);
    }
  }

  // ---------------------------------------------------------------- evidence

  async function resetReport(page) {
    const ok = await confirmAction(`Start the cutover evidence of route ${page.route.name} afresh? Comparisons and findings are dropped; learned noise stays.`, true);
    if (!ok) return;
    try {
      await api('/routes/' + encodeURIComponent(page.route.name) + '/report/reset', { method: 'POST' });
      notice(`The evidence of ${page.route.name} starts afresh.`, 'ok');
      state.open.clear();
      refreshNow();
    } catch (err) {
      failure('The evidence was not reset', err);
    }
  }

  function renderEvidence(page) {
    const report = page.report;
    const body = $('#evidence-body');
    const rules = report.rules;
    const rows = [];
    for (const e of report.endpoints) {
      const open = state.open.has(e.endpoint);
      rows.push(el('tr', {
        class: 'endpoint', 'data-endpoint': e.endpoint,
        onclick: () => { if (open) state.open.delete(e.endpoint); else state.open.add(e.endpoint); renderEvidence(page); },
      },
      el('td', { class: 'mono' }, (open ? '▾ ' : '▸ ') + e.endpoint),
      el('td', {}, el('span', { class: 'badge ' + e.verdict, 'data-verdict': e.verdict }, e.verdict.replace(/_/g, ' '))),
      el('td', { class: 'num' }, String(e.comparisons)),
      el('td', { class: 'num' }, num(e.mismatch_rate, 1, '%')),
      el('td', {}, e.findings.map((f) => el('code', { class: 'badge' }, f.field)), e.findings.length ? '' : '–')));
      if (open) rows.push(el('tr', { class: 'endpoint-detail' }, el('td', { colspan: 5 }, endpointDetail(page, e))));
    }
    const pooled = report.pooled_from || [];
    const more = report.next_offset != null
      ? el('p', { class: 'muted small', id: 'evidence-more' }, `Showing the ${report.endpoints.length} busiest of ${report.total_endpoints} endpoints; the rest: strangler report ${report.route}.`)
      : null;
    fill(body,
      pooled.length ? el('p', { id: 'evidence-pooled' }, `The fleet's evidence, pooled from ${pooled.length} instance${pooled.length === 1 ? '' : 's'}: ${pooled.join(', ')}.`) : null,
      el('p', { class: 'muted small' },
        `A field is a finding when it differs in at least ${rules.finding_absolute} points more of the pairs than it varies `
        + `between two answers of the same side, and at least ${rules.finding_relative}% more; an endpoint is ready after `
        + `${rules.ready_after} comparisons without findings.`),
      report.endpoints.length
        ? el('table', { id: 'report' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Endpoint'), el('th', {}, 'Verdict'), el('th', { class: 'num' }, 'Compared'),
            el('th', { class: 'num' }, 'Differing'), el('th', {}, 'Findings'))),
          el('tbody', {}, rows))
        : el('p', { class: 'muted', text: 'Nothing compared yet.' }),
      more,
      recentDiffs(page));
  }

  function endpointDetail(page, e) {
    return el('div', {},
      e.findings.length ? e.findings.map((f) => el('div', { class: 'finding', 'data-field': f.field },
        el('div', {}, el('code', {}, f.field), ` differs in ${f.differing} pairs (${num(f.rate, 1, '%')}); `
          + `same-side noise ${num(f.noise_rate, 1, '%')}; first ${f.first_seen}, last ${f.last_seen}`),
        f.examples.map((x) => pairView(page, x))))
        : el('p', { class: 'muted', text: 'No significant finding.' }),
      e.noise.length ? el('div', { class: 'small' }, el('strong', {}, 'Learned noise: '),
        e.noise.map((nz) => el('code', { class: 'badge', 'data-noise': nz.field, title: 'varies between two answers of the same side; explained the difference of this many pairs' },
          `${nz.field} ${num(nz.rate, 0, '%')}` + (nz.explained ? ` · explained ${nz.explained}` : ''))), ' ') : null,
      el('p', { class: 'muted small', 'data-explained': String(e.explained || 0) },
        `${e.explained || 0} pair${e.explained === 1 ? '' : 's'} differed only where noise explains it; noise judged on `
        + `${e.noise_window || 0} recent same-side sample${e.noise_window === 1 ? '' : 's'} from ${e.noise_clients || 0} client${e.noise_clients === 1 ? '' : 's'}, each client counted once.`
        + ((e.inferred_from || []).length ? ` Template inferred from ${e.inferred_from.join(' / ')} distinct values.` : '')));
  }

  // An example pair, legacy and new side by side. The pair's diff record (same instant and path)
  // has every field that differed in it; the finding's field is highlighted.
  function pairView(page, x) {
    const record = page.diffs && page.diffs.diffs.find((d) => d.at === x.at && d.path === x.path);
    const cells = [el('div', { class: 'head' }, x.path), el('div', { class: 'head legacy' }, 'legacy'), el('div', { class: 'head new' }, 'new')];
    const row = (label, lv, nv, hl) => {
      const cls = hl ? ' hl' : '';
      cells.push(el('div', { class: 'mono' + cls, 'data-where': label }, label),
        el('div', { class: 'legacy-value' + cls }, el('pre', {}, lv)),
        el('div', { class: 'new-value' + cls }, el('pre', {}, nv)));
    };
    if (record) {
      row('status', String(record.legacy.status), String(record.new.status), x.at_field === 'status');
      row('answered in', num(record.legacy.duration_ms, 1, ' ms'), num(record.new.duration_ms, 1, ' ms'), false);
      for (const d of record.differences) {
        if (d.where === 'status') continue;
        row(d.where, value(d.legacy), value(d.new), d.where === x.at_field);
      }
    } else {
      row(x.at_field, value(x.legacy), value(x.new), true);
    }
    return el('div', { class: 'pair', 'data-at': x.at },
      ...cells,
      record ? null : el('div', { class: 'muted small' }, (page.report.pooled_from || []).length > 1
        ? 'The rest of this pair is not among this instance\'s recent diffs: another instance of the fleet compared it, or it is older.'
        : 'The rest of this pair is no longer among the recent diffs.'));
  }

  function recentDiffs(page) {
    const diffs = page.diffs ? page.diffs.diffs.slice(0, 10) : [];
    return el('div', { id: 'recent-diffs' },
      el('h3', { text: 'Recent differences' }),
      diffs.length ? el('table', {}, el('tbody', {}, diffs.map((d) => el('tr', {},
        el('td', { class: 'muted small' }, d.at),
        el('td', { class: 'mono' }, d.method + ' ' + d.path),
        el('td', {}, el('span', { class: 'legacy' }, String(d.legacy.status)), ' / ', el('span', { class: 'new' }, String(d.new.status))),
        el('td', {}, d.differences.map((x) => el('code', { class: 'badge' }, x.where)), ' ')))))
        : el('p', { class: 'muted', text: 'None kept.' }),
      page.diffs && page.diffs.noise.length
        ? el('p', { class: 'small' }, el('strong', {}, 'Learned noise on this route: '), page.diffs.noise.map((n) => el('code', { class: 'badge' }, n.field)), ' ')
        : null);
  }

  // ---------------------------------------------------------------- the header's actions

  async function reloadConfig() {
    const ok = await confirmAction('Read the config file again and apply it? A file with problems changes nothing.');
    if (!ok) return;
    try {
      const done = await api('/reload', { method: 'POST' });
      notice(`Config reloaded: ${Object.keys(done.weights).length} routes.`, 'ok');
      refreshNow();
    } catch (err) {
      failure('The config was not reloaded', err);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#reload').addEventListener('click', reloadConfig);
    $('#token-button').addEventListener('click', () => askToken(''));
    window.addEventListener('hashchange', route);
    route();
  });
}());
