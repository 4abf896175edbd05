// Effort KPIs on the supervisor view: one small chart per figure for the last 24 hours (by hour)
// and the last 7 days (by UTC day), drawn here as inline SVG: no library, nothing from a CDN.
// It fills <section id="kpis"> of the page that loads it, reads /v1/kpis with the page's token
// (the URL fragment's #token=..., sent as a Bearer token) and reads it again every minute.
// Each chart carries its numbers as data attributes (data-kpi, data-range, data-total on the
// <svg>, data-start and data-value on each bar), exactly as the API gave them.
'use strict';

(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 60000;
  const RANGES = [
    { key: '24h', bucket: 'hour', title: 'Last 24 hours' },
    { key: '7d', bucket: 'day', title: 'Last 7 days' },
  ];
  // Colours keep at least 4.5:1 against white (WCAG AA), as the panel's own.
  const INK = { main: '#1a4fc4', second: '#8a1616', empty: '#4a5560', axis: '#c9d1d9' };
  const seconds = (v) => (v < 120 ? `${v} s` : v < 5400 ? `${+(v / 60).toFixed(1)} min`
    : `${+(v / 3600).toFixed(1)} h`);
  const share = (v) => `${Math.round(v * 100)}%`;
  const plain = (v) => String(v);
  const decimal = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
  // [field, label, format, what it means, (names of stacked fields)]; a second field stacks
  // on the first.
  const KPIS = [
    ['requested', 'Hand-offs requested', plain, 'bots and IVRs asking for a person'],
    ['accepted', 'Accepted', plain, 'taken by an agent'],
    ['expired', 'Expired', plain, 'nobody took them in time'],
    ['cancelled', 'Cancelled', plain, 'withdrawn before an agent took them'],
    ['handed_back', 'Handed back', plain, 'given back to the bot by the agent'],
    ['time_to_accept_p50_seconds', 'Time to accept, median', seconds, 'half waited less'],
    ['time_to_accept_p90_seconds', 'Time to accept, 90th percentile', seconds,
      'nine in ten waited less'],
    ['verification_carried', 'Verification carried', share,
      'accepted with a verification still valid'],
    ['reasks_per_100_accepted', 'Re-asks per 100 hand-offs', decimal,
      'agents asking for what the customer already gave'],
    [['reask_warnings_heeded', 'reask_warnings_sent_anyway'], 'Re-ask warnings', plain,
      'heeded (blue) or sent anyway (red)', ['heeded', 'sent anyway']],
    ['channel_switches_per_handoff', 'Channel switches per hand-off', decimal,
      'changes of channel before the agent'],
    ['repeat_contacts', 'Repeat contacts', plain, 'asked for a person again within 7 days'],
    ['alerts_raised', 'Risk alerts raised', plain, 'alerts for supervisors'],
    ['time_to_acknowledge_p50_seconds', 'Time to acknowledge, median', seconds,
      'from an alert to a supervisor seeing to it'],
  ];

  const { token } = window.handoffPanel;
  let timer = 0;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') node.textContent = v;
      else node.setAttribute(k, String(v));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    node.append(...children);
    return node;
  }

  function label(range, start) {
    const d = new Date(start);
    if (range === '24h') return `${String(d.getUTCHours()).padStart(2, '0')}:00 UTC`;
    return d.toLocaleDateString('en-GB', { weekday: 'short', day: 'numeric', timeZone: 'UTC' });
  }

  function raw(value) { return value === null || value === undefined ? '' : String(value); }

  // One bar chart: a bar per bucket (stacked when the KPI has two fields), the bucket and its
  // value in each bar's tooltip, and the range's total for screen readers.
  function chart(kpi, range, data) {
    const [field, name, format, , parts] = kpi;
    const fields = Array.isArray(field) ? field : [field];
    const width = 180;
    const height = 56;
    const base = height - 4;
    const buckets = data.buckets;
    const slot = width / buckets.length;
    const gap = buckets.length > 12 ? 1 : 3;
    const values = buckets.map((b) => fields.map((f) => b[f]));
    const peak = Math.max(1, ...values.map((v) => v.reduce((s, x) => s + (x || 0), 0)));
    const total = fields.map((f) => raw(data.total[f])).join(' ');
    const shown = fields.map((f) => data.total[f]);
    const spoken = shown.every((v) => v === null) ? 'no data'
      : shown.map((v, n) => (v === null ? 'no data' : format(v))
        + (parts ? ` ${parts[n]}` : '')).join(', ');
    const graph = svg('svg', {
      viewBox: `0 0 ${width} ${height}`, width: '100%', height, preserveAspectRatio: 'none',
      role: 'img', 'aria-label': `${name}, ${RANGES.find((r) => r.key === range).title}: ${spoken}`,
      'data-kpi': fields.join(' '), 'data-range': range, 'data-total': total,
    }, svg('line', { x1: 0, x2: width, y1: base + 0.5, y2: base + 0.5, stroke: INK.axis }));
    buckets.forEach((b, i) => {
      let top = base;
      values[i].forEach((v, n) => {
        const x = i * slot + gap / 2;
        const w = Math.max(1, slot - gap);
        if (v === null) {
          graph.append(svg('rect', { x, y: base - 1, width: w, height: 1, fill: INK.empty,
            'data-start': b.start, 'data-field': fields[n], 'data-value': '' },
          svg('title', {}, `${label(range, b.start)}: no data`)));
          return;
        }
        const h = v ? Math.max(2, ((base - 2) * v) / peak) : 0;
        top -= h;
        graph.append(svg('rect', { x, y: top, width: w, height: h,
          fill: n ? INK.second : INK.main, 'data-start': b.start, 'data-field': fields[n],
          'data-value': raw(v) }, svg('title', {}, `${label(range, b.start)}: ${format(v)}`)));
      });
    });
    const axis = el('div', { class: 'kpi-axis', 'aria-hidden': 'true' },
      el('span', { text: label(range, buckets[0].start) }),
      el('span', { text: label(range, buckets[buckets.length - 1].start) }));
    axis.style.display = 'flex';
    axis.style.justifyContent = 'space-between';
    const figure = el('div', { class: 'kpi-chart' },
      el('span', { class: 'kpi-range', text: `${range === '24h' ? '24 h' : '7 days'}: ${spoken}` }),
      graph, axis);
    figure.style.display = 'flex';
    figure.style.flexDirection = 'column';
    figure.style.flex = '1 1 0';
    figure.style.gap = '2px';
    return figure;
  }

  function render(section, results) {
    const list = el('div', { class: 'kpi-list' });
    for (const kpi of KPIS) {
      const charts = el('div', { class: 'kpi-charts' },
        ...RANGES.map((r) => chart(kpi, r.key, results[r.key])));
      charts.style.display = 'flex';
      charts.style.gap = '12px';
      const item = el('div', { class: 'kpi', 'data-kpi-item': kpi[1] },
        el('h3', { class: 'kpi-name', text: kpi[1] }),
        el('p', { class: 'kpi-about', text: kpi[3] }), charts);
      item.style.marginBottom = '14px';
      list.append(item);
    }
    const heading = section.querySelector('h2') || el('h2', { text: 'Effort KPIs' });
    const when = el('p', { class: 'kpi-when', role: 'status',
      text: `Read ${new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}; ` +
        `re-ask warnings count as heeded after ${results['24h'].reask_warning_minutes} min.` });
    section.replaceChildren(heading, when, list);
    section.dataset.loaded = 'true';
    for (const node of section.querySelectorAll('.kpi-about, .kpi-range, .kpi-when, .kpi-axis')) {
      node.style.margin = '0';
      node.style.fontSize = '.8rem';
      node.style.color = INK.empty;
    }
  }

  async function load() {
    const section = document.getElementById('kpis');
    if (!section) return;
    clearTimeout(timer);
    try {
      const results = {};
      for (const r of RANGES) {
        const response = await fetch(`/v1/kpis?bucket=${r.bucket}`, { cache: 'no-store',
          headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } });
        const data = await response.json();
        if (response.status !== 200) {
          section.replaceChildren(el('h2', { text: 'Effort KPIs' }),
            el('p', { role: 'alert', text: data.detail || `The KPIs could not be read (${response.status}).` }));
          return;
        }
        results[r.key] = data;
      }
      render(section, results);
    } catch (e) {
      section.replaceChildren(el('h2', { text: 'Effort KPIs' }),
        el('p', { role: 'alert', text: 'The KPIs could not be read; trying again shortly.' }));
    }
    timer = setTimeout(load, REFRESH_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', load);
  else load();
})();
