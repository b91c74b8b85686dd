"""The status page: one self-contained HTML document (inline CSS and script, no CDN).

It holds no data: its script fetches ``/api/status`` with the session cookie every few
seconds and draws every panel from the JSON. Each panel is a ``<section>`` with a stable
``id`` and ``data-panel``, which the browser tests look for. Controls ask the server for
a fresh one-time action link, then post it with the typed confirmation word.
"""

from __future__ import annotations

from tfl.timeutil import IST_OFFSET_S

REFRESH_MS = 5000
PENDING_REFRESH_MS = 500  # while a command waits for its acknowledgement
PANELS = (
    "state",
    "feed",
    "bias",
    "pnl",
    "positions",
    "orders",
    "rejections",
    "commands",
    "log",
    "report",
    "model",
    "controls",
)

_CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,sans-serif;background:#f4f5f7;color:#111}
header{padding:10px 12px;background:#1d2733;color:#fff;display:flex;justify-content:space-between;
flex-wrap:wrap;gap:6px}
main{display:grid;grid-template-columns:1fr;gap:10px;padding:10px}
@media(min-width:900px){main{grid-template-columns:repeat(2,minmax(0,1fr))}
 #panel-positions,#panel-orders,#panel-log,#panel-report,#panel-model,#panel-commands{grid-column:1/-1}}
section{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px #0002;overflow-x:auto}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#565656;margin:0 0 6px}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:3px 6px;text-align:left;white-space:nowrap}
th{color:#666;font-weight:600}tr+tr td{border-top:1px solid #eee}
.big{font-size:22px;font-weight:700}.ok{color:#107c10}.bad{color:#b00020}.warn{color:#9a6700}
.pill{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:700}
.s-ACTIVE{background:#dff6dd}.s-HALTED{background:#fde7e9}.s-REDUCE-ONLY{background:#fff4ce}.s-DOWN{background:#ddd}
pre{white-space:pre-wrap;font-size:12px;margin:0}button{font:inherit;padding:8px 12px;margin:4px 4px 0 0;
border-radius:6px;border:1px solid #888;background:#fafafa}button.danger{border-color:#b00020;color:#b00020}
dialog input{font:inherit;padding:6px;width:100%}.muted{color:#777}.bar{height:8px;background:#eee;border-radius:4px}
.bar>div{height:8px;border-radius:4px;background:#b00020}
"""

_SCRIPT = """
const REFRESH = %(refresh)d, PENDING_REFRESH = %(pending)d, IST_OFFSET = %(ist_offset)d;
const $ = (id) => document.getElementById(id);
const ENT = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'};
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, c => ENT[c]);
const ist = (t) => t ? new Date((t + IST_OFFSET) * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' IST' : '-';
const money = (x) => Number(x).toLocaleString('en-IN', {minimumFractionDigits: 2, maximumFractionDigits: 2});
function table(cols, rows) {
  if (!rows.length) return '<p class="muted">none</p>';
  return '<table><tr>' + cols.map(c => '<th>' + esc(c[0]) + '</th>').join('') + '</tr>' +
    rows.map(r => '<tr>' + cols.map(c => '<td>' + c[1](r) + '</td>').join('') + '</tr>').join('') + '</table>';
}
function body(id, html) { $('panel-' + id).querySelector('.body').innerHTML = html; }
let last = null;
function draw(f) {
  last = f;
  const rt = f.runtime;
  const st = rt.running ? rt.state : 'DOWN';
  body('state', '<span class="pill big s-' + esc(st) + '" data-state="' + esc(st) + '">' +
    esc(rt.running ? rt.state : 'NOT RUNNING') + '</span> ' + esc(rt.state_reason) +
    '<p>world <b>' + esc(rt.world || '-') + '</b> · session ' + esc(f.session || '-') + ' · journal ' + esc(f.journal) +
    (rt.running ? '' : '<br><span class="bad">no heartbeat for ' + esc(rt.beat_age_s ?? '-') +
      ' s: the trader is not running (journal state ' + esc(rt.state) + ')</span>') + '</p>');
  body('feed', '<p>heartbeat ' + ist(rt.beat_at) + ' (' + esc(rt.beat_age_s ?? '-') + ' s ago)</p><p>feed <b class="' +
    (rt.feed_fresh ? 'ok">fresh' : 'bad">stale') + '</b>, lag ' + esc(rt.feed_lag_s ?? '-') + ' s, last tick ' +
    ist(rt.last_tick_ts) + '</p><p>token <b class="' + (rt.token_ok ? 'ok">valid' : 'bad">not valid') +
    '</b>, expires ' + ist(rt.token_expires_at) + '</p>');
  const b = f.bias;
  body('bias', '<p class="big">' + esc(b.bias) + '</p><p>' + esc(b.reason) + '</p>' +
    (b.inputs.length ? '<p class="muted">inputs (' + esc(b.record_source) + ')</p>' +
      table([['input', r => esc(r[0])], ['value', r => esc(r[1])]], b.inputs) : ''));
  const p = f.pnl;
  body('pnl', '<p class="big ' + (p.pnl < 0 ? 'bad' : 'ok') + '">' + money(p.pnl) + '</p>' +
    '<p>realised ' + money(p.realised) + ' · open ' + money(p.unrealised) + ' · charges ' + money(f.charges) + '</p>' +
    '<p>loss limit ' + money(p.loss_limit) + ' (' + esc(p.loss_limit_pct) + '%%): <b>' + esc(p.limit_used_pct) +
    '%% used</b></p><div class="bar"><div style="width:' + Math.min(100, p.limit_used_pct) + '%%"></div></div>');
  body('positions', table([['symbol', r => esc(r.symbol)], ['side', r => esc(r.side)], ['qty', r => esc(r.qty)],
    ['entry', r => money(r.entry)], ['stop', r => money(r.stop)], ['target', r => money(r.target)],
    ['R', r => esc(r.r)], ['mark', r => money(r.mark)], ['P&L', r => money(r.pnl)], ['R mult', r => esc(r.r_multiple)],
    ['stop at broker', r => '<b class="' + (r.stop_resting ? 'ok">yes' : 'bad">NO') + '</b> ' + esc(r.stop_status)],
    ['', r => '<button data-act="exit_position" data-symbol="' + esc(r.symbol) + '">exit</button>']], f.positions));
  const ocols = [['order', r => esc(r.cid)], ['symbol', r => esc(r.symbol)], ['leg', r => esc(r.leg)],
    ['side', r => esc(r.side)], ['type', r => esc(r.type)], ['qty', r => esc(r.qty)], ['level', r => esc(r.level)],
    ['status', r => esc(r.status)], ['reason', r => esc(r.reason)]];
  body('orders', table(ocols, f.open_orders));
  body('rejections', '<p class="muted">orders the broker rejected</p>' + table(ocols, f.rejected_orders) +
    '<p class="muted">signals without an order</p>' + table([['at', r => esc(r.at)], ['symbol', r => esc(r.symbol)],
    ['side', r => esc(r.side)], ['reason', r => esc(r.reason)]], f.rejected_signals));
  body('commands', table([['command', r => esc(r.kind) + (r.symbol ? ' ' + esc(r.symbol) : '')],
    ['from', r => esc(r.source)], ['issued', r => ist(r.issued_at)],
    ['state', r => '<span class="cmd-state" data-id="' + esc(r.id) + '" data-state="' + esc(r.state) + '">' +
      esc(r.state) + '</span>'], ['outcome', r => esc(r.outcome)]], f.commands));
  body('log', '<p class="muted">' + esc(f.log_source) + '</p>' + table([['time', r => esc(r.at)],
    ['level', r => '<b class="' + (r.level === 'WARNING' ? 'warn' : 'bad') + '">' + esc(r.level) + '</b>'],
    ['message', r => esc(r.message)]], f.log_lines));
  body('report', f.day_report ? '<pre>' + esc(f.day_report) + '</pre>' :
    '<p class="muted">the day\\'s report appears after the close</p>');
  body('model', f.model_check.length ? '<p class="muted">' + esc(f.model_source) + '</p>' +
    f.model_check.map(l => '<p>' + esc(l) + '</p>').join('') :
    '<p class="muted">no comparison yet: tfl compare runs once the day\\'s bars are stored</p>');
  const sent = $('control-msg').dataset.command;
  const mine = sent && f.commands.find(c => c.id === sent);
  if (mine && mine.state !== 'pending') {
    $('control-msg').textContent = mine.kind + ' ' + mine.state + (mine.outcome ? ': ' + mine.outcome : '');
  }
  $('updated').textContent = 'updated ' + ist(f.generated_at);
  document.body.dataset.ready = '1';
}
let timer = null;
async function refresh() {
  clearTimeout(timer);
  let wait = REFRESH;
  try {
    const r = await fetch('/api/status', {credentials: 'same-origin', cache: 'no-store'});
    if (r.status === 403) { $('updated').textContent = 'signed out: ask for a new link'; return; }
    if (!r.ok) { $('updated').textContent = 'status unavailable (' + r.status + ')'; return; }
    const f = await r.json();
    draw(f);
    if (f.commands.some(c => c.state === 'pending')) wait = PENDING_REFRESH;
  } catch (e) { $('updated').textContent = 'offline: ' + e; }
  finally { timer = setTimeout(refresh, wait); }
}
async function post(path, data) {
  const r = await fetch(path, {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-TFL-Page': '1'}, body: JSON.stringify(data)});
  const text = await r.text();
  if (!r.ok) throw new Error(text.trim() || String(r.status));
  return JSON.parse(text);
}
let pending = null;
async function ask(kind, symbol) {
  try {
    const link = await post('/api/link', {kind: kind, symbol: symbol || ''});
    pending = {token: link.token, kind: kind, symbol: symbol || ''};
    $('confirm-what').textContent = link.label;
    $('confirm-word').textContent = link.confirm;
    $('confirm-input').value = '';
    $('confirm-msg').textContent = '';
    $('confirm').showModal();
  } catch (e) { $('control-msg').textContent = 'refused: ' + e.message; }
}
async function send(ev) {
  ev.preventDefault();
  if (!pending) return;
  try {
    const got = await post('/api/command', {token: pending.token, confirm: $('confirm-input').value,
      reason: $('confirm-reason').value});
    $('control-msg').textContent = 'sent ' + got.id + ': pending until the trader acknowledges it';
    $('control-msg').dataset.command = got.id;
    pending = null;
    $('confirm').close();
    refresh();
  } catch (e) { $('confirm-msg').textContent = 'refused: ' + e.message; pending = null; }
}
document.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-act]');
  if (b) ask(b.dataset.act, b.dataset.symbol);
});
$('confirm-form').addEventListener('submit', send);
$('confirm-cancel').addEventListener('click', () => { pending = null; $('confirm').close(); });
refresh();
"""


def _section(name: str, title: str, extra: str = "") -> str:
    return f'<section id="panel-{name}" data-panel="{name}"><h2>{title}</h2><div class="body">{extra}</div></section>'


_TITLES = {
    "state": "State",
    "feed": "Feed, heartbeat, token",
    "bias": "Today's bias",
    "pnl": "P&amp;L and the daily loss limit",
    "positions": "Positions",
    "orders": "Open orders",
    "rejections": "Rejections",
    "commands": "Commands",
    "log": "Recent warnings and errors",
    "report": "The day's report",
    "model": "Live against the model",
}

_CONTROLS = """<section id="panel-controls" data-panel="controls"><h2>Controls</h2>
<p class="muted">Each control needs a fresh one-time link and the typed word.</p>
<button data-act="stop_entries">Stop new entries</button>
<button data-act="flatten_halt" class="danger">Flatten and halt</button>
<button data-act="lift_halt">Lift the halt</button>
<p id="control-msg" role="status"></p></section>
<dialog id="confirm"><form id="confirm-form"><p><b id="confirm-what"></b></p>
<p>Type <b id="confirm-word"></b> to confirm:</p>
<input id="confirm-input" autocomplete="off" autocapitalize="characters">
<p><input id="confirm-reason" placeholder="reason (optional)" maxlength="200"></p>
<p id="confirm-msg" class="bad"></p><button type="submit" class="danger" id="confirm-send">Send</button>
<button type="button" id="confirm-cancel">Cancel</button></form></dialog>"""


def status_page() -> str:
    """The page's HTML (no data in it: the script fetches the facts)."""
    sections = "".join(_section(n, _TITLES[n], '<p class="muted">loading</p>') for n in PANELS if n != "controls")
    script = _SCRIPT % {"refresh": REFRESH_MS, "pending": PENDING_REFRESH_MS, "ist_offset": IST_OFFSET_S}
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer"><title>TFL status</title>'
        f'<style>{_CSS}</style></head><body><header><b>TFL status</b><span id="updated">loading</span></header>'
        f"<main>{sections}{_CONTROLS}</main><script>{script}</script></body></html>"
    )


def login_page(token: str) -> str:
    """The page a login link opens: one button that exchanges the link (a POST, so that a mail
    scanner fetching the link does not use it up)."""
    from html import escape

    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1"><title>TFL status: sign in</title>'
        "<style>body{font:16px system-ui,sans-serif;margin:2em}button{font:inherit;padding:10px 16px}</style></head>"
        '<body><form method="post" action="/login"><input type="hidden" name="t" value="'
        f'{escape(token, quote=True)}"><p>This link works once and signs you in until 17:00 IST.</p>'
        '<button type="submit" id="signin">Open the status page</button></form></body></html>'
    )
