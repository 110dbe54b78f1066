// foryou web app: every write is a call to the JSON API with the bearer token entered in the header
// (kept in this tab's sessionStorage only), so the server's one auth check guards the browser too.
"use strict";
(function () {
  const TOKEN_KEY = "foryou.token";
  const status = document.getElementById("status");

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  function say(text, bad) {
    status.textContent = text;
    status.className = "status " + (bad ? "bad" : "good");
  }

  // the token box
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  if (input) input.value = token();
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!input) return;
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    say(input.value.trim() ? "token saved for this tab" : "token cleared");
  });

  // htmx: send the token too, and swap error fragments (4xx answers carry a readable message)
  document.body.addEventListener("htmx:configRequest", function (ev) {
    if (token()) ev.detail.headers["Authorization"] = "Bearer " + token();
  });
  document.body.addEventListener("htmx:beforeSwap", function (ev) {
    const s = ev.detail.xhr.status;
    if (s >= 400 && s < 500) { ev.detail.shouldSwap = true; ev.detail.isError = false; }
  });

  async function api(method, url, body) {
    const headers = { "Content-Type": "application/json" };
    if (token()) headers["Authorization"] = "Bearer " + token();
    const res = await fetch(url, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      let why = data && data.detail ? data.detail : res.statusText;
      if (typeof why !== "string") why = JSON.stringify(why);
      throw new Error(res.status + ": " + why);
    }
    return data;
  }

  // `key=value` lines (the CLI's --set syntax) → a nested object; values parsed as JSON where they are
  function overrides(text) {
    const tree = {};
    text.split("\n").map(function (l) { return l.trim(); }).filter(function (l) { return l && l[0] !== "#"; })
      .forEach(function (line) {
        const at = line.indexOf("=");
        if (at < 1) throw new Error("expected key=value, got " + JSON.stringify(line));
        const keys = line.slice(0, at).trim().split(".");
        const raw = line.slice(at + 1).trim();
        let value;
        try { value = JSON.parse(raw); } catch (e) { value = raw; }
        let node = tree;
        keys.slice(0, -1).forEach(function (k) { node = node[k] = node[k] || {}; });
        node[keys[keys.length - 1]] = value;
      });
    return tree;
  }

  function refreshTimeline() {
    const page = document.getElementById("page");
    if (page) htmx.ajax("GET", page.dataset.refresh, { target: "#timeline" });
  }

  document.body.addEventListener("click", async function (ev) {
    const b = ev.target.closest("button");
    if (!b) return;
    try {
      if (b.classList.contains("act")) {  // an action on a card: write, then the next page
        const card = b.closest(".card");
        const user = document.getElementById("page").dataset.user;
        b.disabled = true;
        if (b.dataset.kind) {
          const r = await api("POST", "/v1/engagements", { user_id: user, post_id: card.dataset.post, kind: b.dataset.kind });
          say(b.dataset.kind + " on post " + card.dataset.post + " stored (seq " + r.last_seq + "); page refreshed");
        } else {
          const r = await api("POST", "/v1/follows", { user_id: user, target_id: card.dataset.author, action: b.dataset.relation });
          say(b.dataset.relation + " @" + card.dataset.author + " stored (seq " + r.last_seq + "); page refreshed");
        }
        refreshTimeline();
      } else if (b.classList.contains("stop")) {
        await api("POST", "/v1/experiments/" + encodeURIComponent(b.dataset.stop) + "/stop");
        location.reload();
      } else if (b.classList.contains("promote")) {
        const r = await api("POST", "/v1/models/" + b.dataset.model + "/promote", { version: Number(b.dataset.version) });
        say("promoted " + r.promoted);
        setTimeout(function () { location.reload(); }, 600);
      } else if (b.classList.contains("rollback")) {
        const r = await api("POST", "/v1/models/" + b.dataset.model + "/rollback");
        say("rolled back: " + r.promoted + " serves");
        setTimeout(function () { location.reload(); }, 600);
      } else if (b.id === "add-arm") {
        const arms = document.querySelector(".arms-in");
        const copy = arms.querySelector(".arm-in:last-of-type").cloneNode(true);
        copy.querySelector(".arm-name").value = "arm" + arms.querySelectorAll(".arm-in").length;
        copy.querySelector(".arm-overrides").value = "";
        arms.appendChild(copy);
      }
    } catch (e) {
      say(e.message, true);
      b.disabled = false;
    }
  });

  const create = document.getElementById("create-experiment");
  if (create) create.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const f = new FormData(create);
    try {
      const arms = {};
      create.querySelectorAll(".arm-in").forEach(function (a) {
        arms[a.querySelector(".arm-name").value.trim()] = {
          weight: Number(a.querySelector(".arm-weight").value),
          overrides: overrides(a.querySelector(".arm-overrides").value) };
      });
      const e = await api("POST", "/v1/experiments", {
        name: f.get("name"), description: f.get("description"), layer: f.get("layer"),
        traffic: Number(f.get("traffic")), primary_metric: f.get("primary_metric"), arms: arms });
      say("created " + e.name);
      setTimeout(function () { location.reload(); }, 600);
    } catch (e) {
      say(e.message, true);
    }
  });

  // live charts (reports view): differences between polls of the cumulative counters
  if (document.getElementById("chart-rps") && window.uPlot) charts();

  function charts() {
    const N = 90, el = function (id) { return document.getElementById(id); };
    const t = [], rps = [], p50 = [], p99 = [], hit = [], shed = [];
    function plot(id, series, data) {
      const box = el(id);
      // a rolling three-minute window; rates and latencies from 0, the hit rate within [0, 1]
      const y = id === "chart-cache" ? { range: [0, 1] } : { range: function (u, lo, hi) { return [0, Math.max(hi || 0, 1) * 1.1]; } };
      return new uPlot({ width: Math.min(box.clientWidth || 320, 420), height: 140, legend: { show: false },
        scales: { x: { time: true, range: function (u, lo, hi) { const end = hi || Date.now() / 1000; return [end - 180, end]; } }, y: y },
        axes: [{}, { size: 44 }],
        series: [{}].concat(series.map(function (s) { return { label: s[0], stroke: s[1], width: 2 }; })) }, data, box);
    }
    const u = [plot("chart-rps", [["req/s", "#1d6fb8"]], [t, rps]),
               plot("chart-latency", [["p50", "#1d6fb8"], ["p99", "#c0392b"]], [t, p50, p99]),
               plot("chart-cache", [["hit rate", "#2e8b57"]], [t, hit]),
               plot("chart-shed", [["shed/s", "#c0392b"]], [t, shed])];
    let last = null;
    function quantile(prev, cur, q) {  // from the histogram's bucket increments
      const les = Object.keys(cur).filter(function (k) { return k !== "+Inf"; })
        .map(Number).sort(function (a, b) { return a - b; });
      const total = (cur["+Inf"] || 0) - ((prev && prev["+Inf"]) || 0);
      if (total <= 0) return null;
      for (const le of les) {
        const k = String(le) in cur ? String(le) : le.toFixed(4);
        const inc = (cur[k] || 0) - ((prev && prev[k]) || 0);
        if (inc >= q * total) return le * 1000;
      }
      return les.length ? les[les.length - 1] * 1000 : null;
    }
    async function poll() {
      try {
        const m = await (await fetch("/ui/metrics.json")).json();
        const now = Date.now() / 1000;
        if (last) {
          const dt = Math.max(now - last.at, 1e-3);
          t.push(now);
          rps.push((m.count - last.m.count) / dt);
          p50.push(quantile(last.m.buckets, m.buckets, 0.5));
          p99.push(quantile(last.m.buckets, m.buckets, 0.99));
          const h = m.cache.hit - last.m.cache.hit, mi = m.cache.miss - last.m.cache.miss;
          hit.push(h + mi > 0 ? h / (h + mi) : null);
          shed.push((m.shed - last.m.shed) / dt);
          [t, rps, p50, p99, hit, shed].forEach(function (a) { if (a.length > N) a.shift(); });
          u[0].setData([t, rps]); u[1].setData([t, p50, p99]); u[2].setData([t, hit]); u[3].setData([t, shed]);
          const f = function (v, d) { return v === null || v === undefined ? "—" : v.toFixed(d); };
          const i = t.length - 1;  // the latest values as text too (screen readers, a quick look)
          el("now-rps").textContent = "now " + f(rps[i], 1);
          el("now-latency").textContent = "now " + f(p50[i], 1) + " / " + f(p99[i], 1);
          el("now-cache").textContent = "now " + f(hit[i], 2);
          el("now-shed").textContent = "now " + f(shed[i], 1);
        }
        last = { at: now, m: m };
        const rows = Object.entries(m.gauges).map(function (kv) {
          return "<tr><td>" + kv[0].replace(/[<>&]/g, "") + "</td><td>" + Number(kv[1]).toFixed(4) + "</td></tr>";
        });
        if (rows.length) el("gauges").tBodies[0].innerHTML = rows.join("");
      } catch (e) { /* the next poll retries */ }
    }
    poll();
    setInterval(poll, 2000);
  }
})();
