// netobs page. Every string from the server is set with textContent or
// setAttribute, never parsed as HTML: interface and process names come
// from inside namespaces.
'use strict';

const token = new URLSearchParams(location.search).get('token');
// api returns the URL of an API path with its query parameters, the
// token the page was opened with among them.
function api(path, params) {
  const q = new URLSearchParams(params || {});
  if (token) q.set('token', token);
  const s = q.toString();
  return s ? path + '?' + s : path;
}
const SVG = 'http://www.w3.org/2000/svg';
const svg = document.getElementById('topo');
const filter = document.getElementById('filter');
const statusEl = document.getElementById('status');
const logEl = document.getElementById('log');
const capsEl = document.getElementById('captures');
const socksEl = document.getElementById('sockets');
const socksTitle = document.getElementById('sockets-title');
let graph = { nodes: [], edges: [] };
let selected = null; // namespace whose sockets are shown

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function nsLabel(n) {
  if (n.names && n.names.length) return n.names.join(', ');
  if (n.pid) return 'pid ' + n.pid + (n.command ? ': ' + n.command.slice(0, 30) : '');
  return n.id;
}

// compact writes a counter in at most 5 characters: 980, 12k, 3.4M.
function compact(n) {
  for (const [d, u] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (n >= d) return (n / d).toFixed(n < 10 * d ? 1 : 0) + u;
  }
  return String(n);
}

const W = 300, HEAD = 38, ROW = 26, GAP = 30;

function draw() {
  const q = filter.value.trim().toLowerCase();
  const nss = graph.nodes.filter((n) => n.type === 'namespace');
  const ifs = graph.nodes.filter((n) => n.type === 'interface');
  const procs = graph.nodes.filter((n) => n.type === 'process');
  const byNS = new Map(nss.map((n) => [n.id, []]));
  for (const i of ifs) if (byNS.has(i.namespace)) byNS.get(i.namespace).push(i);
  const shown = nss.filter((n) => !q || nsLabel(n).toLowerCase().includes(q) || n.id.includes(q) ||
    byNS.get(n.id).some((i) => i.name.toLowerCase().includes(q)));
  const cols = Math.max(1, Math.floor((svg.parentElement.clientWidth - 160) / (W + GAP)));
  const colY = new Array(cols).fill(GAP);
  const pos = new Map();
  svg.replaceChildren();
  const edgesG = el('g', { class: 'edges' });
  const nodesG = el('g', { class: 'nodes' });
  for (const n of shown) {
    let c = 0;
    for (let k = 1; k < cols; k++) if (colY[k] < colY[c]) c = k;
    const x = GAP + c * (W + GAP), y = colY[c];
    const list = byNS.get(n.id);
    const h = HEAD + list.length * ROW + 8;
    colY[c] += h + GAP;
    const g = el('g', { class: 'ns' + (n.host ? ' host' : '') + (n.id === selected ? ' selected' : ''), 'data-id': n.id });
    g.addEventListener('click', (e) => { if (e.target.parentNode === g) showSockets(n.id); });
    g.append(el('rect', { x, y, width: W, height: h, rx: 6 }));
    g.append(el('text', { x: x + 8, y: y + 15, class: 'title' }, nsLabel(n) + (n.host ? ' (host)' : '')));
    g.append(el('text', { x: x + 8, y: y + 29 }, n.id + (n.error ? '  error: ' + n.error : '')));
    list.forEach((i, k) => {
      const iy = y + HEAD + k * ROW;
      const up = i.up && (i.state === 'UP' || i.state === 'UNKNOWN');
      const ig = el('g', { class: 'iface ' + (up ? 'up' : 'down'), 'data-id': i.id, 'data-state': i.state, 'data-up': i.up });
      ig.append(el('rect', { x: x + 8, y: iy, width: W - 16, height: ROW - 4 }));
      const addr = (i.addrs || []).find((a) => !a.startsWith('fe80')) || '';
      ig.append(el('text', { x: x + 14, y: iy + 15 }, i.name + '  ' + i.kind + ' ' + i.state + (i.up ? '' : ' (admin down)') + (addr ? '  ' + addr : '')));
      const c = i.counters;
      if (c) {
        ig.dataset.rxPackets = c.rx_packets;
        ig.dataset.txPackets = c.tx_packets;
        ig.append(el('text', { x: x + W - 34, y: iy + 15, class: 'counters', 'text-anchor': 'end' }, '↓' + compact(c.rx_packets) + ' ↑' + compact(c.tx_packets)));
      }
      const t = el('title', {}, i.name + '\n' + i.kind + ' ' + i.state + ' mtu ' + i.mtu + '\n' + (i.mac || '') + '\n' + (i.addrs || []).join('\n') +
        (c ? '\nrx ' + c.rx_packets + ' packets ' + c.rx_bytes + ' bytes, ' + c.rx_dropped + ' dropped' +
          '\ntx ' + c.tx_packets + ' packets ' + c.tx_bytes + ' bytes, ' + c.tx_dropped + ' dropped' : ''));
      ig.append(t);
      const btn = el('g', { class: 'capture', role: 'button', tabindex: 0 });
      btn.append(el('title', {}, 'capture on ' + i.name));
      btn.append(el('circle', { cx: x + W - 20, cy: iy + (ROW - 4) / 2, r: 6 }));
      const ns = n.id, name = i.name;
      btn.addEventListener('click', () => startCapture(ns, name));
      btn.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') startCapture(ns, name); });
      ig.append(btn);
      nodesG.append(ig);
      pos.set(i.id, { l: x + 8, r: x + W - 8, y: iy + (ROW - 4) / 2 });
    });
    nodesG.insertBefore(g, nodesG.firstChild);
  }
  const px = GAP + cols * (W + GAP);
  procs.forEach((p, k) => {
    const y = GAP + 20 + k * 40;
    const g = el('g', { class: 'proc', 'data-id': p.id });
    g.append(el('ellipse', { cx: px + 60, cy: y, rx: 60, ry: 15 }));
    g.append(el('text', { x: px + 14, y: y + 4 }, p.comm + ' [' + p.pid + ']'));
    nodesG.append(g);
    pos.set(p.id, { l: px, r: px, y });
  });
  for (const e of graph.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const ax = a.r < b.l ? a.r : a.l, bx = a.r < b.l ? b.l : b.r;
    const bend = Math.abs(ax - bx) < 10 ? 40 : 0;
    const d = `M${ax},${a.y} C${ax + bend},${a.y} ${bx + bend},${b.y} ${bx},${b.y}`;
    edgesG.append(el('path', { d, class: 'edge ' + e.kind, 'data-from': e.from, 'data-to': e.to, 'data-kind': e.kind }));
  }
  svg.append(nodesG, edgesG);
  svg.setAttribute('width', px + (procs.length ? 160 : 0));
  svg.setAttribute('height', Math.max(...colY, GAP + procs.length * 40 + 40));
}

// startCapture captures on interface name of namespace ns (both from the
// topology) until its stop button is pressed, then saves the pcapng file.
async function startCapture(ns, name) {
  const ctl = document.createElement('span');
  ctl.className = 'capture';
  const label = document.createElement('span');
  label.textContent = 'capturing ' + name + ' ';
  const stop = document.createElement('button');
  stop.textContent = 'stop';
  stop.disabled = true;
  ctl.append(label, stop);
  capsEl.append(ctl);
  try {
    const r = await fetch(api('/api/capture', { ns, iface: name }), { method: 'POST', cache: 'no-store' });
    if (!r.ok) throw new Error(r.status + ' ' + (await r.text()).trim());
    const id = r.headers.get('X-Netobs-Capture');
    stop.disabled = false;
    // The stop answer carries the final counts, the kernel's drops among them.
    let counts = null;
    stop.addEventListener('click', () => {
      stop.disabled = true;
      counts = fetch(api('/api/capture/stop', { id }), { method: 'POST' })
        .then(res => res.status === 200 ? res.json() : null)
        .catch(() => null);
    });
    const reader = r.body.getReader();
    const chunks = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
      label.textContent = 'capturing ' + name + ' (' + n + ' bytes) ';
    }
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob(chunks, { type: 'application/x-pcapng' }));
    a.download = 'netobs-' + name.replace(/[^A-Za-z0-9.-]/g, '_') + '.pcapng';
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    const c = counts ? await counts : null;
    label.textContent = 'saved ' + name + (c ? ': ' + c.captured + ' captured, ' +
      c.received + ' received by filter, ' + c.dropped + ' dropped by kernel' : '') + ' ';
    const dismiss = document.createElement('button');
    dismiss.textContent = 'dismiss';
    dismiss.addEventListener('click', () => ctl.remove());
    stop.replaceWith(dismiss);
  } catch (err) {
    label.textContent = 'capture ' + name + ': ' + err.message + ' ';
    stop.textContent = 'dismiss';
    stop.disabled = false;
    stop.addEventListener('click', () => ctl.remove());
  }
}

// showSockets lists the TCP and UDP sockets of namespace ns (a topology
// ID) and their processes in the side panel.
async function showSockets(ns) {
  selected = ns;
  for (const g of document.querySelectorAll('g.ns')) g.classList.toggle('selected', g.dataset.id === ns);
  const n = graph.nodes.find((x) => x.id === ns);
  socksTitle.textContent = 'Sockets of ' + (n ? nsLabel(n) : ns);
  socksEl.replaceChildren();
  try {
    const r = await fetch(api('/api/sockets', { ns }), { cache: 'no-store' });
    if (!r.ok) throw new Error(r.status + ' ' + (await r.text()).trim());
    const socks = await r.json();
    if (selected !== ns) return;
    const row = (cells, tag) => {
      const tr = document.createElement('tr');
      for (const c of cells) {
        const td = document.createElement(tag);
        td.textContent = c;
        tr.append(td);
      }
      return tr;
    };
    socksEl.append(row(['proto', 'state', 'local', 'peer', 'process'], 'th'));
    for (const s of socks) {
      const tr = row([s.netid, s.state, s.local, s.peer, s.processes.map((p) => p.comm + '[' + p.pid + ']').join(', ')], 'td');
      tr.dataset.local = s.local;
      tr.dataset.state = s.state;
      socksEl.append(tr);
    }
    socksEl.dataset.ns = ns;
  } catch (err) {
    socksEl.append(Object.assign(document.createElement('caption'), { textContent: 'sockets: ' + err.message }));
  }
}

let pending = null;
async function refresh() {
  pending = null;
  try {
    const r = await fetch(api('/api/topology'), { cache: 'no-store' });
    if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
    graph = await r.json();
    draw();
    document.body.dataset.loaded = String(Date.now());
  } catch (err) {
    statusEl.textContent = 'topology: ' + err.message;
    statusEl.className = 'lost';
  }
}
function refreshSoon() { if (!pending) pending = setTimeout(refresh, 150); }

function log(ev) {
  const li = document.createElement('li');
  const t = (ev.time || '').replace(/^.*T/, '').replace(/\..*$/, '');
  const ns = ev.ns ? (ev.ns.name || (ev.ns.pid ? 'pid ' + ev.ns.pid : 'net:[' + ev.ns.inode + ']')) : '';
  li.textContent = t + ' ' + ns + ' ' + ev.action + ' ' + (ev.kind || '') + ' ' + (ev.text || '');
  logEl.prepend(li);
  while (logEl.children.length > 200) logEl.lastChild.remove();
}

function connect() {
  const es = new EventSource(api('/api/events'));
  es.onopen = () => { statusEl.textContent = 'live'; statusEl.className = 'live'; refreshSoon(); };
  es.onerror = () => { statusEl.textContent = 'reconnecting…'; statusEl.className = 'lost'; };
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    log(ev);
    refreshSoon();
  };
}

filter.addEventListener('input', draw);
window.addEventListener('resize', draw);
refresh();
connect();
