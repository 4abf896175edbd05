// The handoff supervisor view: the tenant's open risk alerts, live, newest first, each with what
// the customer said and a link to their brief (read here, audited like any read), and an
// Acknowledge button that clears the alert on every supervisor's screen. Plain JavaScript, no
// dependencies. The token arrives in the URL fragment (#token=...), which browsers never send
// to a server; requests carry it as a Bearer token, the event stream as ?access_token=.
// The effort charts in <section id="kpis"> belong to supervisor-kpis.js.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { token, METHODS, el, claims, clock, showProblem } = window.handoffPanel;
  const CHANNELS = { voice: 'phone', chat: 'chat', sms: 'SMS', email: 'email', social: 'social',
    other: 'other' };
  const state = { alerts: [], stream: null, failed: false, expires: 0, brief: null,
    flaggedTurn: null };

  function ago(iso) {
    const m = Math.round((Date.now() - new Date(iso).getTime()) / 60000);
    if (m < 1) return 'just now';
    if (m < 90) return `${m} min ago`;
    return `${Math.round(m / 60)} h ago`;
  }

  function channelName(channel) { return CHANNELS[channel] || channel || 'other'; }

  function setStatus(text, bad) {
    const node = $('alerts-status');
    node.textContent = text;
    node.classList.toggle('bad', Boolean(bad));
  }

  // -- talking to the service ----------------------------------------------------------------

  const api = window.handoffPanel.caller((problem) => fail(problem));

  function fail(problem) {
    if (state.failed) return;
    state.failed = true;
    if (state.stream) state.stream.close();
    const titles = { expired: 'This link has expired', revoked: 'This view has been signed out',
      missing: 'This view needs a sign-in link', forbidden: 'This view is for supervisors' };
    showProblem(titles[problem.reason] || 'This link is not valid', problem.detail);
  }

  // -- the alerts ----------------------------------------------------------------------------

  async function loadAlerts() {
    const { status, data } = await api('GET', '/v1/alerts?status=open&limit=100');
    if (status === 403) {  // an agent's panel link: the agent panel is at /desk/
      fail({ reason: 'forbidden', detail: (data && data.detail) || '' });
      throw new Error('forbidden');
    }
    if (status !== 200) {
      setStatus(`The alerts could not be read (${status}).`, true);
      return;
    }
    state.alerts = data.items;
    renderAlerts();
  }

  function renderAlerts() {
    const list = $('alert-list');
    const focused = document.activeElement && document.activeElement.dataset.ack;
    list.textContent = '';
    $('alert-count').textContent = `(${state.alerts.length})`;
    if (!state.alerts.length) {
      list.append(el('li', { class: 'empty', text: 'No open alerts.' }));
    }
    for (const alert of state.alerts) {
      const turn = alert.turn;
      const who = `customer ${alert.customer_id}`;
      const button = el('button', { type: 'button', 'data-ack': alert.id,
        'aria-label': `Acknowledge the ${alert.kind} alert of ${who}`, text: 'Acknowledge' });
      button.addEventListener('click', () => acknowledge(alert, button).catch(() => {}));
      const link = el('a', { href: '#brief', 'data-brief': alert.customer_id,
        'aria-label': `Open the brief of ${who}`, text: 'Open the brief' });
      link.addEventListener('click', (event) => {
        event.preventDefault();
        openBrief(alert).catch(() => {});
      });
      list.append(el('li', { 'data-alert': alert.id, class: alert.severity },
        el('div', { class: 'ho-head' },
          el('span', { class: `pill ${alert.severity}`, text: alert.severity }),
          el('span', { class: 'pill', text: alert.kind }),
          el('span', { class: 'pill', text: channelName(turn.channel) }),
          el('span', { class: 'ho-meta', text: `${clock(alert.raised_at)}, ${ago(alert.raised_at)}` })),
        el('blockquote', { class: 'alert-said', text: turn.text }),
        el('p', { class: 'ho-meta',
          text: `${alert.terms.join(', ')} \u00b7 ${who} \u00b7 ${turn.conversation_id}` }),
        el('div', { class: 'alert-actions' }, link, button)));
      if (focused === alert.id) button.focus();
    }
  }

  function raised(alert) {
    if (state.alerts.some((a) => a.id === alert.id)) return;
    state.alerts.unshift(alert);
    state.alerts.sort((a, b) => (a.id < b.id ? 1 : -1));  // ids sort by when they were raised
    renderAlerts();
    setStatus(`New ${alert.severity} alert: ${alert.kind}, ${alert.customer_id}.`);
  }

  function cleared(alert, message) {
    const before = state.alerts.length;
    state.alerts = state.alerts.filter((a) => a.id !== alert.id);
    if (state.alerts.length !== before) renderAlerts();
    if (message) setStatus(message);
  }

  async function acknowledge(alert, button) {
    button.disabled = true;
    const { status, data } = await api('POST',
      `/v1/alerts/${encodeURIComponent(alert.id)}/ack`, {});
    if (status === 200 || status === 404) {
      const by = data && data.acknowledged_by;
      cleared(alert, `Acknowledged${by ? ` by ${by}` : ''}: ${alert.kind}, ${alert.customer_id}.`);
      $('alerts').focus();
      return;
    }
    button.disabled = false;
    setStatus((data && data.detail) || `Not acknowledged (${status}).`, true);
  }

  function follow() {
    const source = new EventSource(`/v1/alerts/events?access_token=${encodeURIComponent(token)}`);
    state.stream = source;
    source.addEventListener('alert.raised', (event) => raised(JSON.parse(event.data).record));
    source.addEventListener('alert.acknowledged', (event) => {
      const alert = JSON.parse(event.data).record;
      cleared(alert, `${alert.acknowledged_by} acknowledged: ${alert.kind}, ${alert.customer_id}.`);
    });
    source.addEventListener('open', () => {
      // Whatever happened while the stream was away is in a fresh list.
      loadAlerts().then(() => setStatus('Live: new alerts appear here.')).catch(() => {});
    });
    source.addEventListener('error', () => {
      if (state.failed) return;
      setStatus('Reconnecting\u2026', true);
      // A refused stream (an expired token) is not retried by the browser: find out why.
      if (source.readyState === EventSource.CLOSED) {
        api('GET', '/v1/alerts?limit=1').then(() => setTimeout(follow, 2000), () => {});
      }
    });
  }

  // -- the brief, read only ------------------------------------------------------------------

  async function openBrief(alert) {
    const { status, data } = await api('GET',
      `/v1/customers/${encodeURIComponent(alert.customer_id)}/context`);
    if (status !== 200) {
      setStatus((data && data.detail) || `The brief could not be read (${status}).`, true);
      return;
    }
    state.flaggedTurn = `${alert.turn.conversation_id}\u0000${alert.turn.id}`;
    showBrief(data);
    $('brief').focus();
  }

  function showBrief(brief) {
    state.brief = brief;
    $('brief').hidden = false;
    $('brief-title').textContent = `Customer ${brief.customer.id}`;
    $('summary').textContent = brief.summary || '';
    const verified = $('verified');
    verified.textContent = '';
    for (const v of brief.verifications) {
      const lapsed = v.expired || new Date(v.expires_at).getTime() <= Date.now();
      verified.append(el('p', { class: lapsed ? 'verified lapsed' : 'verified' },
        el('span', { text: `${lapsed ? 'Was verified' : '\u2714 Verified'}: ` +
          `${v.identity.kind} ${v.identity.value}` }),
        el('span', { class: 'how', text: `${METHODS[v.method] || v.method} via ` +
          `${channelName(v.channel)}, ${ago(v.verified_at)}` })));
    }
    const flags = $('flags');
    flags.textContent = '';
    for (const f of brief.flags) {
      flags.append(el('li', { text: `${f.category || f.kind}: ${f.term}` +
        (f.count > 1 ? ` (${f.count} times)` : '') + (f.turn_id ? ` (turn ${f.turn_id})` : '') }));
    }
    $('flags-box').hidden = !brief.flags.length;
    const facts = $('facts');
    facts.textContent = '';
    for (const [key, fact] of Object.entries(brief.facts)) {
      facts.append(el('dt', { text: key.replace(/_/g, ' ') }),
        el('dd', { text: `${fact.value}` }));
    }
    if (!Object.keys(brief.facts).length) facts.append(el('dd', { text: 'None yet.' }));
    const journey = $('journey');
    journey.textContent = '';
    for (const step of brief.journey) {
      journey.append(el('li', { text: `${channelName(step.channel)} ${clock(step.started_at)}` }));
    }
    const turns = $('turns');
    turns.textContent = '';
    for (const turn of brief.turns) {
      const here = `${turn.conversation_id}\u0000${turn.id}` === state.flaggedTurn;
      turns.append(el('li', { class: `${turn.role}${here ? ' flagged-here' : ''}`,
        'data-turn': turn.id },
      el('span', { class: 't-when', text: clock(turn.ts) }),
      el('span', { class: 't-who', text: `${channelName(turn.channel)} ${turn.role}` }),
      el('span', { class: 't-text', text: turn.text })));
    }
    turns.scrollTop = turns.scrollHeight;
  }

  // -- start -----------------------------------------------------------------------------------

  async function start() {
    const who = token.startsWith('dt_') ? claims(token) : null;
    if (!who) {
      fail(token ? { reason: 'invalid', detail: 'The link does not carry a sign-in token.' }
        : { reason: 'missing', detail: 'Open this view with the link your desk gives you.' });
      return;
    }
    state.expires = who.expires;
    $('close-brief').addEventListener('click', () => {
      $('brief').hidden = true;
      $('alerts').focus();
    });
    try {
      await loadAlerts();
    } catch (e) {
      return;
    }
    $('who').textContent = `Signed in as ${who.name} (${who.tenant}), until ${clock(who.expires)}`;
    $('app').hidden = false;
    follow();
    setInterval(() => {
      if (state.failed) return;
      if (Date.now() >= state.expires) {
        fail({ reason: 'expired', detail: 'Open this view again from your desk.' });
        return;
      }
      renderAlerts();
    }, 30000);
  }

  window.addEventListener('hashchange', () => location.reload());
  start().catch(() => {});
})();
