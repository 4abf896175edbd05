// The handoff agent panel: the queue, the brief, live turns and a reply box that warns before
// asking the customer for something they already gave. Plain JavaScript, no dependencies.
// The panel token arrives in the URL fragment (#token=...), which browsers never send to a
// server; requests carry it as a Bearer token, event streams as ?access_token= (EventSource
// cannot send headers).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { fragment, token, METHODS, el, claims, clock, showProblem } = window.handoffPanel;
  const CHANNELS = { voice: 'IVR', chat: 'chat', sms: 'SMS', email: 'email', social: 'social',
    other: 'other' };
  const QUEUE_EVENTS = ['handoff.requested', 'handoff.accepted', 'handoff.resolved',
    'handoff.cancelled', 'handoff.expired', 'handoff.handed_back'];
  const CUSTOMER_EVENTS = ['fact.set', 'identity.verified', 'continuation.redeemed',
    'customer.merged', 'reask', ...QUEUE_EVENTS];
  const state = { agent: '', expires: 0, brief: null, handoff: null, queue: [],
    streams: [], turns: new Set(), reasks: [], checked: '', confirmed: '', checkTimer: 0,
    reloadTimer: 0, failed: false };

  // -- small helpers -------------------------------------------------------------------------

  function minutes(ms) {
    const m = Math.round(Math.abs(ms) / 60000);
    if (m < 1) return 'under a minute';
    if (m < 90) return `${m} min`;
    const h = Math.round(m / 60);
    return h < 48 ? `${h} h` : `${Math.round(h / 24)} days`;
  }

  function channelName(channel) { return CHANNELS[channel] || channel || 'other'; }

  // -- talking to the service ----------------------------------------------------------------

  const api = window.handoffPanel.caller((problem) => fail(problem));

  function stream(path, types, onEvent, onOpen) {
    const sep = path.includes('?') ? '&' : '?';
    const source = new EventSource(`${path}${sep}access_token=${encodeURIComponent(token)}`);
    for (const type of types) source.addEventListener(type, onEvent);
    if (onOpen) source.addEventListener('open', onOpen);
    source.addEventListener('error', () => {
      // A refused stream (an expired token) is not retried by the browser: find out why.
      if (source.readyState === EventSource.CLOSED && !state.failed) {
        api('GET', '/v1/handoffs?limit=1').then(() => {
          setTimeout(() => stream(path, types, onEvent, onOpen), 2000);
        }, () => {});
      }
    });
    state.streams.push(source);
    return source;
  }

  function fail(problem) {
    if (state.failed) return;
    state.failed = true;
    for (const s of state.streams) s.close();
    const titles = {
      expired: 'This panel link has expired',
      revoked: 'This panel has been signed out',
      missing: 'This panel needs a sign-in link',
    };
    showProblem(titles[problem.reason] || 'This panel link is not valid', problem.detail);
  }

  // -- the queue -----------------------------------------------------------------------------

  async function loadQueue() {
    const { status, data } = await api('GET', '/v1/handoffs?status=pending&limit=100');
    if (status !== 200) {
      setStatus('queue-status', `The queue could not be read (${status}).`, true);
      return;
    }
    state.queue = data.items;
    renderQueue();
  }

  function renderQueue() {
    const list = $('queue-list');
    const focused = document.activeElement && document.activeElement.dataset.handoff;
    list.textContent = '';
    $('queue-count').textContent = `(${state.queue.length})`;
    if (!state.queue.length) {
      list.append(el('li', { class: 'empty', text: 'Nobody is waiting.' }));
    }
    for (const ho of state.queue) {
      const age = minutes(Date.now() - new Date(ho.created_at).getTime());
      const button = el('button', { type: 'button', 'data-handoff': ho.id,
        'aria-label': `Accept: ${ho.summary || ho.reason}, ${ho.queue} queue, priority ${ho.priority}`,
        text: 'Accept' });
      button.addEventListener('click', () => accept(ho, button));
      list.append(el('li', { 'data-handoff-item': ho.id },
        el('div', { class: 'ho-head' },
          el('span', { class: `pill p${ho.priority}`, text: `P${ho.priority}` }),
          el('span', { class: 'pill', text: ho.queue }),
          el('span', { class: 'pill', text: channelName(ho.channel) })),
        el('p', { class: 'ho-summary', text: ho.summary || ho.intent || 'No summary' }),
        el('p', { class: 'ho-meta', text: `${ho.reason.replace(/_/g, ' ')} \u00b7 waiting ${age}` }),
        button));
      if (focused === ho.id) button.focus();
    }
  }

  async function accept(ho, button) {
    button.disabled = true;
    const { status, data } = await api('POST', `/v1/handoffs/${encodeURIComponent(ho.id)}/accept`,
      { agent_id: state.agent });
    if (status === 200) {
      setStatus('queue-status', `You accepted ${ho.summary || ho.id}.`);
      state.handoff = data.handoff;
      showBrief(data.context);
      follow(data.context.customer.id);
      $('brief').focus();
      return;
    }
    const detail = (data && data.detail) || `could not accept (${status})`;
    const taken = /accepted by (.+)$/.exec(detail);
    const message = taken ? `Taken by ${taken[1]}` : detail;
    const item = document.querySelector(`[data-handoff-item="${CSS.escape(ho.id)}"]`);
    if (item) item.append(el('p', { class: 'ho-taken', text: message }));
    button.textContent = taken ? 'Taken' : 'Accept';
    setStatus('queue-status', message, true);
  }

  // -- the brief -----------------------------------------------------------------------------

  function showBrief(brief) {
    state.brief = brief;
    $('brief').hidden = false;
    $('brief-title').textContent = `Customer ${brief.customer.id}`;
    $('summary').textContent = brief.summary || '';
    renderVerified();
    renderList('dna', brief.do_not_ask.map((k) => k.replace(/_/g, ' ')));
    renderIdentities(brief);
    renderFacts(brief);
    renderJourney(brief);
    renderFlags(brief);
    renderContact(brief);
    renderClose();
    $('turns').textContent = '';
    state.turns.clear();
    for (const turn of brief.turns) addTurn(turn, false);
    scrollTurns();
  }

  function renderVerified() {
    const box = $('verified');
    box.textContent = '';
    if (!state.brief) return;
    const now = Date.now();
    for (const v of state.brief.verifications) {
      const lapsed = v.expired || new Date(v.expires_at).getTime() <= now;
      const how = `${METHODS[v.method] || v.method} via ${channelName(v.channel)}, ` +
        `${minutes(now - new Date(v.verified_at).getTime())} ago, ` +
        (lapsed ? 'expired' : `valid ${minutes(new Date(v.expires_at).getTime() - now)}`) +
        ` (${v.level})`;
      box.append(el('p', { class: lapsed ? 'verified lapsed' : 'verified', 'data-verified': '' },
        el('span', { text: `${lapsed ? 'Was verified' : '\u2714 Verified'}: ` +
          `${v.identity.kind} ${v.identity.value}` }),
        el('span', { class: 'how', text: how })));
    }
  }

  function renderList(id, items) {
    const list = $(id);
    list.textContent = '';
    for (const item of items) list.append(el('li', { text: item }));
  }

  function renderIdentities(brief) {
    const list = $('identities');
    list.textContent = '';
    for (const i of brief.customer.identities) {
      const badge = i.verified ? el('span', { class: 'pill ok', text: 'verified' })
        : i.linked ? el('span', { class: 'pill', text: `linked on ${channelName(i.channel)}` })
          : el('span', { class: 'pill warn', text: 'stated, not verified' });
      list.append(el('li', {}, el('span', { class: 'kind', text: `${i.kind} ` }),
        el('span', { text: `${i.value} ` }), badge));
    }
  }

  function renderFacts(brief) {
    const list = $('facts');
    list.textContent = '';
    for (const [key, fact] of Object.entries(brief.facts)) {
      const where = [fact.verified ? 'verified' : 'said',
        fact.channel ? `on ${channelName(fact.channel)}` : null,
        fact.at ? `at ${clock(fact.at)}` : null].filter(Boolean).join(' ');
      list.append(el('dt', { text: key.replace(/_/g, ' ') }),
        el('dd', { 'data-fact': key }, el('span', { text: `${fact.value} ` }),
          el('span', { class: 'prov', text: where })));
    }
    if (!Object.keys(brief.facts).length) list.append(el('dd', { text: 'None yet.' }));
  }

  function renderJourney(brief) {
    const list = $('journey');
    list.textContent = '';
    for (const step of brief.journey) {
      list.append(el('li', { text: `${channelName(step.channel)} ${clock(step.started_at)}` }));
    }
    list.append(el('li', { class: 'you', text: 'you' }));
  }

  function flagsByTurn() {
    const byTurn = {};
    for (const f of (state.brief ? state.brief.flags : [])) {
      if (f.turn_id && f.kind !== 'reask') {
        (byTurn[`${f.conversation_id}\u0000${f.turn_id}`] ||= []).push(f);
      }
    }
    return byTurn;
  }

  function renderFlags(brief) {
    const list = $('flags');
    list.textContent = '';
    for (const f of brief.flags) {
      const text = f.kind === 'reask'
        ? `Re-asked: ${f.term.replace(/_/g, ' ')} ("${f.phrase || f.term}", turn ${f.turn_id})`
        : `${f.category || f.kind}: ${f.term}${f.count > 1 ? ` (${f.count} times)` : ''}` +
          (f.turn_id ? ` (turn ${f.turn_id})` : '');
      list.append(el('li', { class: `flag ${f.kind}`, text }));
    }
    $('flags-box').hidden = !brief.flags.length;
  }

  function addTurn(turn, live) {
    const key = `${turn.conversation_id}\u0000${turn.id}`;
    if (state.turns.has(key)) return;
    state.turns.add(key);
    const flags = flagsByTurn()[key] || [];
    const list = $('turns');
    const previous = list.lastElementChild;
    const newChannel = !previous || previous.dataset.conversation !== turn.conversation_id;
    const item = el('li', { class: `${turn.role}${flags.length ? ' flagged' : ''}`,
      'data-turn': turn.id, 'data-conversation': turn.conversation_id },
    el('span', { class: 't-when', text: clock(turn.ts) }),
    el('span', { class: 't-who' },
      el('span', { class: `chan${newChannel ? ' new-channel' : ''}`,
        text: channelName(turn.channel), 'aria-label': `on ${channelName(turn.channel)}` }),
      ` ${turn.role}`),
    el('span', { class: 't-text', text: turn.text }));
    for (const f of flags) {
      item.append(el('span', { class: 't-flag', text: `\u26a0 ${f.category || f.kind}: ${f.term}` }));
    }
    list.append(item);
    if (live) scrollTurns();
  }

  function scrollTurns() {
    const list = $('turns');
    list.scrollTop = list.scrollHeight;
  }

  async function reloadBrief() {
    if (!state.brief) return;
    const id = state.brief.customer.id;
    const { status, data } = await api('GET', `/v1/customers/${encodeURIComponent(id)}/context`);
    if (status === 200) showBrief(data);
  }

  function follow(customerId) {
    for (const s of state.streams.splice(1)) s.close();
    stream(`/v1/customers/${encodeURIComponent(customerId)}/events`,
      ['turn.appended', ...CUSTOMER_EVENTS], (event) => {
        if (event.type !== 'turn.appended') {
          scheduleReload(300);
          return;
        }
        const turn = JSON.parse(event.data).record;
        addTurn(turn, true);
        // A customer's words may raise a risk flag, which only the brief carries: fetch it.
        if (turn.role === 'customer') scheduleReload(500);
      },
      // Anything said between reading the brief and the stream opening is in a fresh brief.
      () => scheduleReload(0));
  }

  function scheduleReload(ms) {
    clearTimeout(state.reloadTimer);
    state.reloadTimer = setTimeout(() => reloadBrief().catch(() => {}), ms);
  }

  function renderContact(brief) {
    const contact = brief.last_human_contact;
    $('contact-box').hidden = !contact;
    if (!contact) return;
    const how = contact.status === 'handed_back'
      ? `handed back to ${contact.handed_back_to || 'the bot'}` : contact.status;
    $('contact').textContent = `${contact.agent_id} ${how} at ${clock(contact.at)} ` +
      `(${contact.outcome.replace(/_/g, ' ')}): ${contact.note || 'no note'}`;
  }

  // -- ending the hand-off: back to the bot with a note, or resolved ---------------------------

  function renderClose() {
    const ho = state.handoff;
    $('close').hidden = !(ho && ho.status === 'accepted' && ho.agent_id === state.agent);
  }

  async function closeHandoff(kind) {
    const ho = state.handoff;
    if (!ho) return;
    const note = $('close-note').value.trim();
    if (kind === 'hand-back' && !note) {
      setStatus('close-status', 'Write a note for the bot first: it continues from it.', true);
      $('close-note').focus();
      return;
    }
    const body = kind === 'hand-back'
      ? { note, to: 'bot', outcome: $('follow-up').checked ? 'needs_follow_up' : 'resolved' }
      : (note ? { note } : {});
    for (const id of ['hand-back', 'resolve']) $(id).disabled = true;
    try {
      const { status, data } = await api('POST',
        `/v1/handoffs/${encodeURIComponent(ho.id)}/${kind}`, body);
      if (status === 200) {
        state.handoff = data;
        $('close-note').value = '';
        $('follow-up').checked = false;
        renderClose();
        setStatus('close-status', kind === 'hand-back'
          ? 'Handed back to the bot with your note.' : 'Resolved.');
        $('brief').focus();
        scheduleReload(0);
      } else {
        setStatus('close-status', (data && data.detail) || `Not done (${status}).`, true);
      }
    } finally {
      for (const id of ['hand-back', 'resolve']) $(id).disabled = false;
    }
  }

  // -- replying, and the re-ask guard ----------------------------------------------------------

  function knownValue(key) {
    const brief = state.brief;
    if (brief.facts[key]) return String(brief.facts[key].value);
    const identity = brief.customer.identities.find((i) => i.kind === key);
    return identity ? identity.value : null;
  }

  async function checkReask(text) {
    if (!state.brief || !text.trim()) {
      state.reasks = [];
    } else {
      const id = encodeURIComponent(state.brief.customer.id);
      const { status, data } = await api('POST', `/v1/customers/${id}/reask-check`, { text });
      state.reasks = status === 200 ? data.reasks : [];
    }
    state.checked = text;
    renderReask();
  }

  function renderReask() {
    const box = $('reask');
    box.textContent = '';
    box.hidden = !state.reasks.length;
    if (!state.reasks.length) {
      $('send').textContent = 'Send';
      return;
    }
    box.append(el('p', { text: 'The customer already gave this. Don\u2019t ask again:' }));
    const list = el('ul');
    for (const r of state.reasks) {
      const values = r.known.map((k) => [k, knownValue(k)]).filter(([, v]) => v !== null);
      const shown = values.map(([k, v]) => `${v} (${k.replace(/_/g, ' ')})`).join(', ');
      list.append(el('li', { 'data-reask': r.topic },
        el('strong', { text: `${r.topic.replace(/_/g, ' ')}: ` }), shown || 'known'));
    }
    box.append(list);
    $('send').textContent = 'Send anyway';
  }

  function replyConversation() {
    const journey = state.brief.journey;
    if (journey.length) return journey[journey.length - 1].conversation_id;
    return state.handoff && state.handoff.conversation_id;
  }

  async function send(event) {
    event.preventDefault();
    const box = $('reply-text');
    const text = box.value;
    if (!text.trim() || !state.brief) return;
    if (state.checked !== text) await checkReask(text);
    if (state.reasks.length && state.confirmed !== text) {
      state.confirmed = text;  // warned once; a second Send sends it anyway
      $('reask').focus();
      setStatus('reply-status', 'Check the warning above; press Send anyway to send it.', true);
      return;
    }
    const conversation = replyConversation();
    if (!conversation) {
      setStatus('reply-status', 'There is no conversation to reply in yet.', true);
      return;
    }
    const turn = { id: `desk-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      role: 'agent', text, ts: new Date().toISOString() };
    $('send').disabled = true;
    try {
      const { status, data } = await api('POST',
        `/v1/conversations/${encodeURIComponent(conversation)}/turns`, { turns: [turn] });
      if (status === 200) {
        box.value = '';
        state.reasks = [];
        state.checked = '';
        renderReask();
        setStatus('reply-status', 'Sent.');
      } else {
        setStatus('reply-status', (data && data.detail) || `Not sent (${status}).`, true);
      }
    } finally {
      $('send').disabled = false;
    }
  }

  function setStatus(id, text, bad) {
    const node = $(id);
    node.textContent = text;
    node.classList.toggle('bad', Boolean(bad));
  }

  // -- start -----------------------------------------------------------------------------------

  async function openHandoff(id) {
    const { status, data } = await api('GET', `/v1/handoffs/${encodeURIComponent(id)}`);
    if (status !== 200) return;
    state.handoff = data;
    const { status: s, data: brief } = await api('GET',
      `/v1/customers/${encodeURIComponent(data.customer_id)}/context`);
    if (s === 200) {
      showBrief(brief);
      follow(brief.customer.id);
    }
  }

  async function start() {
    const who = token.startsWith('dt_') ? claims(token) : null;
    if (!who) {
      fail(token ? { reason: 'invalid', detail: 'The link does not carry a panel token.' }
        : { reason: 'missing', detail: 'Open the panel with the link your desk gives you.' });
      return;
    }
    state.agent = who.name;
    state.expires = who.expires;
    $('reply').addEventListener('submit', send);
    $('close').addEventListener('submit', (event) => event.preventDefault());
    $('hand-back').addEventListener('click', () => closeHandoff('hand-back').catch(() => {}));
    $('resolve').addEventListener('click', () => closeHandoff('resolve').catch(() => {}));
    $('reply-text').addEventListener('input', () => {
      clearTimeout(state.checkTimer);
      state.checkTimer = setTimeout(() => checkReask($('reply-text').value).catch(() => {}), 250);
    });
    $('reply-text').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) $('reply').requestSubmit();
    });
    try {
      await loadQueue();
    } catch (e) {
      return;
    }
    $('who').textContent = `Signed in as ${who.name} (${who.tenant}), until ${clock(who.expires)}`;
    $('app').hidden = false;
    stream('/v1/handoffs/events', QUEUE_EVENTS, () => loadQueue().catch(() => {}));
    if (fragment.get('handoff')) await openHandoff(fragment.get('handoff'));
    setInterval(() => {
      if (state.failed) return;
      if (Date.now() >= state.expires) {
        fail({ reason: 'expired', detail: 'Open the panel again from your desk.' });
        return;
      }
      renderQueue();
      renderVerified();
    }, 30000);
  }

  window.addEventListener('hashchange', () => location.reload());
  start().catch(() => {});
})();
