// What the agent panel and the supervisor view share, loaded before either page's own script:
// the panel token from the URL fragment (#token=..., never sent to a server), building
// elements, reading a token's claims, and how times and verification methods are shown.
'use strict';

window.handoffPanel = (() => {
  const fragment = new URLSearchParams(location.hash.slice(1));

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  // A panel token's claims (its tenant, who it names, when it expires), read only to greet and
  // to warn before it lapses: the service checks the token itself on every request.
  function claims(t) {
    try {
      const payload = t.slice(3).split('.')[0].replace(/-/g, '+').replace(/_/g, '/');
      const [tenant, name, , expires] = JSON.parse(atob(payload));
      return { tenant, name, expires: expires * 1000 };
    } catch (e) {
      return null;
    }
  }

  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit',
      hour12: false });
  }

  // `api(method, path, body)` with the panel token; a 401 (an expired or revoked token) goes to
  // `unauthorized` with its problem body, and the call throws.
  function caller(unauthorized) {
    return async (method, path, body) => {
      const headers = { Authorization: `Bearer ${fragment.get('token') || ''}`,
        Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const response = await fetch(path, { method, headers, cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body) });
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      if (response.status === 401) {
        unauthorized(data || {});
        throw new Error('unauthorized');
      }
      return { status: response.status, data };
    };
  }

  // Replace the page with the reason it cannot go on (the page's #problem box).
  function showProblem(title, detail) {
    const $ = (id) => document.getElementById(id);
    $('problem-title').textContent = title;
    $('problem-detail').textContent = detail || '';
    $('app').hidden = true;
    $('problem').hidden = false;
    $('who').textContent = '';
    document.title = `${title} - handoff`;
  }

  return Object.freeze({
    fragment,
    token: fragment.get('token') || '',
    METHODS: Object.freeze({ pin: 'PIN', otp: 'one-time code', kba: 'security questions',
      voice_biometrics: 'voice print', document: 'document', agent: 'an agent', other: 'other' }),
    el,
    claims,
    clock,
    caller,
    showProblem,
  });
})();
