using System.Text;

namespace Lisp.Appliance.Management;

/// <summary>
/// GET /: one self-contained page (inline style and script, nothing fetched from elsewhere) that reads the
/// JSON APIs and shows status, the first page of site table, map-cache and registrations with their totals, and
/// counters, refreshing every 3 s (asking for a token, kept in sessionStorage, when the API answers 401). Data
/// is put into the page with textContent only, never as HTML.
/// </summary>
public static class WebPage
{
    private const string Script = """

        "use strict";
        const $ = id => document.getElementById(id);
        const when = t => t ? t.replace('T', ' ').replace(/\.\d+/, '').replace('+00:00', 'Z') : '--';
        const rlocs = list => list.map(r => `${r.address} p${r.priority} w${r.weight}${r.reachable ? '' : ' down'}`).join(', ') || '--';
        function table(id, headers, rows) {
          const t = document.createElement('table');
          t.id = id;
          const h = t.createTHead().insertRow();
          for (const x of headers) { const th = document.createElement('th'); th.textContent = x; h.appendChild(th); }
          const b = t.createTBody();
          for (const row of rows) {
            const tr = b.insertRow();
            for (const x of row) tr.insertCell().textContent = String(x);
          }
          if (rows.length === 0) { const td = b.insertRow().insertCell(); td.colSpan = headers.length; td.textContent = '(none)'; td.className = 'none'; }
          return t;
        }
        function put(id, ...nodes) { $(id).replaceChildren(...nodes); }
        const PAGE = 200;
        async function get(path) {
          const token = sessionStorage.getItem('token');
          const r = await fetch(path, { cache: 'no-store', headers: token ? { Authorization: `Bearer ${token}` } : {} });
          if (r.status === 401) { $('auth').hidden = false; throw new Error('the API needs a token'); }
          if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
          return r.json();
        }
        const shown = (n, total) => n < total ? ` (first ${n} of ${total}; the JSON API pages with ?limit= and ?after=next)` : '';
        async function refresh() {
          try {
            const [s, st, mc, rg, c] = await Promise.all(['/api/status', `/api/site-table?limit=${PAGE}`, `/api/map-cache?limit=${PAGE}`, `/api/registrations?limit=${PAGE}`, '/api/counters'].map(get));
            document.title = `lisp-decent ${s.name}`;
            $('title').textContent = `lisp-decent ${s.name}`;
            put('status', table('status-table', ['Node', 'Roles', 'Mapping system', 'Up', 'Control', 'Management', 'Version'],
              [[s.name, s.roles.join(', '), s['mapping-system'], `${s['uptime-seconds']} s`, s['control-endpoints'].join(', '), s.management, s.version]]));
            const ms = st['map-servers'];
            put('site-table', ...(ms.length === 0 ? [document.createTextNode('no map-server role')] : ms.map(m => {
              const d = document.createElement('div');
              const h = document.createElement('h3'); h.textContent = `${m.node} (${m.endpoints.join(', ')}): ${m.total} rows${shown(m.rows.length, m.total)}`;
              d.append(h, table('site-rows', ['Site', 'EID-prefix', 'Registered', 'Last registerer', 'First registered', 'Last registered', 'Flags', 'RLOCs', 'Expires'],
                m.rows.map(r => [r.site, r.eid, r.registered ? 'yes' : 'no', r['last-registerer'] ?? '--', when(r['first-registered']), when(r['last-registered']), r.flags, rlocs(r.rlocs), when(r.expires)])));
              return d;
            })));
            $('map-cache-total').textContent = mc.itr ? `${mc.total} entries${shown(mc.entries.length, mc.total)}` : '';
            put('map-cache', mc.itr ? table('map-cache-rows', ['EID-prefix', 'RLOCs', 'Action', 'TTL', 'TTL left', 'Learned from'],
              mc.entries.map(e => [e.eid, e.negative ? '(negative)' : rlocs(e.rlocs), e.action, `${e['ttl-seconds']} s`, `${e['ttl-left-seconds']} s`, e['learned-from'] ?? '--']))
              : document.createTextNode('no itr role'));
            put('registrations', rg.etr ? table('registration-rows', ['EID-prefix', 'Map-server', 'Last sent', 'Last notified'],
              rg.registrations.map(r => [r.eid, r['map-server'], when(r['last-sent']), when(r['last-notified'])]))
              : document.createTextNode('no etr role'));
            const rows = [];
            for (const n of c.control) {
              for (const [k, v] of Object.entries(n.events)) if (v) rows.push([n.node, 'event', k, v]);
              for (const [k, v] of Object.entries(n.drops)) if (v) rows.push([n.node, 'drop', k, v]);
              for (const [k, v] of Object.entries(n.malformed)) if (v) rows.push([n.node, 'malformed', k, v]);
            }
            rows.push(['', 'queue', 'queue-drops', c['queue-drops']], ['', 'send', 'send-errors', c['send-errors']]);
            if (c['data-plane']) for (const w of c['data-plane'].workers) {
              rows.push([w.worker, 'data', 'encap-packets', w['encap-packets']], [w.worker, 'data', 'decap-packets', w['decap-packets']]);
              for (const [k, v] of Object.entries(w.drops)) if (v) rows.push([w.worker, 'data-drop', k, v]);
            }
            put('counters', table('counter-rows', ['Node / worker', 'Kind', 'Counter', 'Value'], rows));
            $('error').textContent = '';
            $('updated').textContent = `updated ${new Date().toISOString().replace('T', ' ').replace(/\.\d+Z/, 'Z')}`;
            document.body.dataset.loaded = 'yes';
          } catch (e) {
            $('error').textContent = `cannot read the management API: ${e.message}`;
          }
        }
        $('token-form').addEventListener('submit', ev => { ev.preventDefault(); sessionStorage.setItem('token', $('token').value.trim()); $('auth').hidden = true; refresh(); });
        refresh();
        setInterval(refresh, 3000);

        """;

    private const string Style = """
        body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
        h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; } h3 { font-size: 1em; font-weight: normal; color: #555; }
        table { border-collapse: collapse; margin: .3em 0; } th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-family: ui-monospace, monospace; font-size: 13px; }
        th { background: #eee; } td.none { color: #888; } #error { color: #b00; } #updated { color: #888; }
        """;

    public static readonly string Html = $"""
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>lisp-decent</title>
        <style>{Style}</style></head>
        <body>
        <h1 id="title">lisp-decent</h1>
        <div id="error"></div><div id="updated"></div>
        <div id="auth" hidden><form id="token-form">Token: <input id="token" type="password" autocomplete="off"> <button>use</button></form></div>
        <h2>Status</h2><div id="status">loading...</div>
        <h2>Site table</h2><div id="site-table">loading...</div>
        <h2>Map-cache</h2><div id="map-cache-total"></div><div id="map-cache">loading...</div>
        <h2>Registrations (ETR)</h2><div id="registrations">loading...</div>
        <h2>Counters</h2><div id="counters">loading...</div>
        <p>JSON: <a href="/api/status">status</a> <a href="/api/site-table">site-table</a> <a href="/api/map-cache">map-cache</a>
        <a href="/api/registrations">registrations</a> <a href="/api/counters">counters</a> - <a href="/metrics">metrics</a></p>
        <script>{Script}</script>
        </body></html>
        """;

    /// <summary>Only this page's own inline script and style may run; it may only fetch from this server.</summary>
    public static readonly string ContentSecurityPolicy =
        $"default-src 'none'; script-src 'sha256-{Hash(Script)}'; style-src 'sha256-{Hash(Style)}'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static string Hash(string s) => Convert.ToBase64String(Lisp.Wire.Crypto.Sha256.HashData(Encoding.UTF8.GetBytes(s)));
}
