/* ANSF-MCP dashboard: live charts (uPlot) fed by the /ws WebSocket. No data -> says "no data", draws nothing. */
(function () {
  "use strict";

  // Opened as /?token=...: the server answered with the token as an HttpOnly cookie, which the assets and the
  // WebSocket carry; take it out of the address bar so it stays out of history, bookmarks and screenshots.
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
  const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f"];

  const state = {
    ws: null, hist: {}, series: {}, ringSize: 1000, snapshot: null, received: 0, snapshots: 0,
    connects: 0, paused: false, backoff: 1000, alertSeenAt: {}, lastMessageAt: null, closeCode: null,
  };
  window.__ansf = state;  // for tests and for curious operators (state.plots: the drawn charts and their data)

  // --- charts ---------------------------------------------------------------------------------------------------
  // Each series: [name, label, scale]; a threshold key draws the alert threshold as a labelled reference line.
  const CHARTS = {
    memory: { series: [["memory.used_fraction", "memory used (fraction)", "frac"], ["phase.level", "phase level", "phase"]],
              scales: { frac: { range: [0, 1] }, phase: { range: [0, 3.5] } } },
    latency: { series: [["latency.p50_ms", "p50 ms", "ms"], ["latency.p95_ms", "p95 ms", "ms"]], threshold: ["coordinate_p95", "ms"] },
    // Brier per probabilistic strategy (the series the server announces), then two fractions: all lie in [0, 1].
    quality: { series: () => Object.keys(state.series).filter((s) => s.startsWith("calibration.")).sort()
                 .map((s) => [s, s.split(".")[1] + " Brier (real outcomes)", "r"])
                 .concat([["quality.neural_accuracy", "neural's assignments: success calls that came true", "r"], ["quality.efficiency", "efficiency", "r"]]),
               scales: { r: { range: [0, 1] } }, threshold: ["calibration", "r", "Brier alert threshold"] },
    tasks: { series: [["tasks.ready", "ready", "n"], ["tasks.blocked", "blocked", "n"], ["tasks.claimed", "claimed", "n"], ["tasks.succeeded", "succeeded", "n"], ["tasks.failed", "failed", "n"]] },
    rates: { series: [["rate.claims_per_min", "claims / min", "n"], ["rate.outcomes_per_min", "outcomes / min", "n"]] },
    semantic: { series: [["semantic.cache_hit_ratio", "cache hit ratio", "frac"], ["semantic.servers_alive", "servers alive", "count"]],
                scales: { frac: { range: [0, 1] } } },
  };
  const plots = {};
  state.plots = plots;

  function card(name) { return document.querySelector(`.card[data-chart="${name}"]`); }

  function noData(name, text) {
    const c = card(name);
    if (plots[name]) { plots[name].destroy(); delete plots[name]; }
    const chart = c.querySelector(".chart");
    chart.innerHTML = `<div class="nodata">${text || "no data"}</div>`;
    delete chart.dataset.key;
    c.dataset.state = "nodata";
  }

  function width(name) { return Math.max(300, card(name).clientWidth - 24); }

  function renderTimeChart(name) {
    const def = CHARTS[name];
    const all = typeof def.series === "function" ? def.series() : def.series;
    const present = all.filter(([s]) => (state.hist[s] || []).length > 0);
    if (present.length === 0) { noData(name); return; }
    const xsSet = new Set();
    present.forEach(([s]) => state.hist[s].forEach((p) => xsSet.add(p[0])));
    const xs = Array.from(xsSet).sort((a, b) => a - b);
    const data = [xs];
    const seriesOpts = [{}];
    present.forEach(([s, label, scale], i) => {
      const m = new Map(state.hist[s]);
      data.push(xs.map((x) => (m.has(x) ? m.get(x) : null)));
      seriesOpts.push({ label, scale, stroke: COLORS[i % COLORS.length], width: 2, points: { size: 4 } });
    });
    const th = def.threshold && state.snapshot && state.snapshot.thresholds && state.snapshot.thresholds[def.threshold[0]];
    if (th) {
      data.push(xs.map(() => th.threshold));
      seriesOpts.push({ label: def.threshold[2] || "alert threshold", scale: def.threshold[1], stroke: "#999", dash: [6, 4], width: 1, points: { show: false } });
    }
    const scales = Object.assign({ x: { time: true } }, def.scales || {});
    const usedScales = Array.from(new Set(present.map((p) => p[2])));
    const axes = [{}].concat(usedScales.map((sc, i) => ({ scale: sc, side: i === 0 ? 3 : 1, grid: { show: i === 0 } })));
    const key = seriesOpts.map((s) => s.label).join("|");
    const c = card(name);
    c.dataset.state = "chart";
    c.dataset.points = String(xs.length);
    if (plots[name] && plots[name]._key === key) {
      plots[name].setData(data);
      return;
    }
    if (plots[name]) plots[name].destroy();
    const el = c.querySelector(".chart");
    el.innerHTML = "";
    const u = new uPlot({ width: width(name), height: 200, scales, axes, series: seriesOpts, legend: { live: false } }, data, el);
    u._key = key;
    plots[name] = u;
  }

  // Value ratios as horizontal bars (SVG): one row per estimate, its label beside it (never on top of another),
  // the 95 % confidence interval as a whisker with caps, the oracle (1.0) as a reference line.
  function renderBenchmark() {
    const name = "benchmark";
    const b = state.snapshot && state.snapshot.benchmark;
    const c = card(name);
    const note = c.querySelector(".note");
    c.querySelector(".measured-on").textContent = b ? "Measured on: " + (b.measured_on || b.data) : "";
    if (!b || !b.value_ratios || b.value_ratios.length === 0) {
      noData(name, "no benchmark yet");
      note.textContent = "run the coordination suite (ansf bench --suite coordination) to fill this chart; its figures are simulated";
      return;
    }
    const rows = b.value_ratios;
    const key = "bench-" + b.id + "-" + rows.map((v) => v.label).join("|");
    note.textContent = `SIMULATED episodes (${b.data}): value ratio against the oracle, 1 = the best assignment under the ` +
      `simulator's hidden skills; says nothing about real teams (see the replay card for real work). Run #${b.id} (${b.suite}) at ` +
      `${new Date(b.created_at * 1000).toLocaleString()}; ` +
      rows.map((v) => `${v.label}: ${v.mean.toFixed(3)}` + (v.ci ? ` [${v.ci[0].toFixed(3)}, ${v.ci[1].toFixed(3)}]` : "")).join("; ") +
      "; whiskers: 95 % confidence intervals";
    c.dataset.state = "chart";
    c.dataset.data = b.data;
    const el = c.querySelector(".chart");
    if (el.dataset.key === key && el.querySelector("svg")) return;
    if (plots[name]) { plots[name].destroy(); delete plots[name]; }
    el.dataset.key = key;
    const W = width(name), rowH = 26, top = 8, labelW = Math.min(220, Math.round(W * 0.4)), right = 56;
    const H = top * 2 + rowH * rows.length + 18;
    const hi = Math.max(1.05, ...rows.map((v) => (v.ci ? v.ci[1] : v.mean)));
    const x = (v) => labelW + (W - labelW - right) * Math.max(0, v) / hi;
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "bench-svg");
    const add = (tag, attrs, text) => {
      const e = document.createElementNS(NS, tag);
      Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    };
    rows.forEach((v, i) => {
      const y = top + i * rowH;
      const label = v.label.length > 34 ? v.label.slice(0, 33) + "…" : v.label;
      const text = add("text", { x: labelW - 6, y: y + rowH / 2 + 4, "text-anchor": "end", class: "bench-label",
                                 "font-size": 12, "data-label": v.label }, label);
      if (label !== v.label) text.appendChild(document.createElementNS(NS, "title")).textContent = v.label;
      add("rect", { x: labelW, y: y + 4, width: Math.max(1, x(v.mean) - labelW), height: rowH - 8,
                    fill: "#1565c055", stroke: "#1565c0", class: "bench-bar", "data-mean": v.mean });
      if (v.ci) {
        const [lo, up] = v.ci, yc = y + rowH / 2;
        add("line", { x1: x(lo), x2: x(up), y1: yc, y2: yc, stroke: "#1d2330", "stroke-width": 1.5, class: "bench-ci",
                      "data-lo": lo, "data-hi": up });
        [lo, up].forEach((w) => add("line", { x1: x(w), x2: x(w), y1: yc - 6, y2: yc + 6, stroke: "#1d2330", "stroke-width": 1.5, class: "bench-cap" }));
      }
      add("text", { x: x(v.ci ? v.ci[1] : v.mean) + 6, y: y + rowH / 2 + 4, "font-size": 11, fill: "#607080", class: "bench-value" }, v.mean.toFixed(3));
    });
    const base = top + rowH * rows.length;
    add("line", { x1: x(1), x2: x(1), y1: top - 4, y2: base, stroke: "#c62828", "stroke-dasharray": "4 3", class: "bench-oracle" });
    add("text", { x: x(1), y: base + 14, "text-anchor": "middle", "font-size": 11, fill: "#c62828" }, "oracle 1.0");
    add("text", { x: 4, y: base + 14, "font-size": 11, fill: "#607080", class: "bench-caption" },
        "value ratio on SIMULATED episodes");
    [0, 0.5].forEach((t) => add("text", { x: x(t), y: base + 14, "text-anchor": "middle", "font-size": 11, fill: "#607080" }, String(t)));
    el.innerHTML = "";
    el.appendChild(svg);
  }

  // The reliability curve: per strategy, the observed success rate of each bin of predicted p, and the diagonal.
  function renderReliability(snap) {
    const name = "reliability";
    const c = card(name);
    const cal = snap.calibration;
    const strategies = cal ? Object.entries(cal.strategies).filter(([, v]) => v.bins && v.bins.length) : [];
    const tbody = document.querySelector("#reliability tbody");
    tbody.innerHTML = "";
    strategies.forEach(([s, v]) => v.bins.forEach((b) => {
      const tr = row(tbody, [s, `${b.lo.toFixed(1)}–${b.hi.toFixed(1)}`, b.n, fmt(b.mean_predicted), fmt(b.observed_rate)]);
      tr.dataset.strategy = s;
    }));
    c.querySelector(".note").textContent = cal ? `${cal.bins} equal-width bins of p; a well-calibrated strategy lies on the ` +
      `diagonal; counts per bin in the table (real outcomes of the last ${snap.alert_window_s} s, strategies with at least ` +
      `${cal.min_samples} outcomes)` : "";
    if (strategies.length === 0) { noData(name, "no data: too few real outcomes with a probability in the window"); return; }
    const xsSet = new Set([0, 1]);
    strategies.forEach(([, v]) => v.bins.forEach((b) => xsSet.add(b.mean_predicted)));
    const xs = Array.from(xsSet).sort((a, b) => a - b);
    const data = [xs, xs.slice()];
    const seriesOpts = [{}, { label: "perfect calibration", stroke: "#999", dash: [6, 4], width: 1, points: { show: false } }];
    strategies.forEach(([s, v], i) => {
      const m = new Map(v.bins.map((b) => [b.mean_predicted, b.observed_rate]));
      data.push(xs.map((x) => (m.has(x) ? m.get(x) : null)));
      seriesOpts.push({ label: `${s} (${v.outcomes} outcomes)`, stroke: COLORS[i % COLORS.length], width: 2,
                        spanGaps: true, points: { size: 7 } });
    });
    c.dataset.state = "chart";
    c.dataset.strategies = strategies.map(([s]) => s).join(",");
    if (plots[name]) plots[name].destroy();
    const el = c.querySelector(".chart");
    el.innerHTML = "";
    plots[name] = new uPlot({
      width: width(name), height: 240, legend: { live: false },
      scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
      axes: [{ label: "predicted p" }, { label: "observed success rate" }],
      series: seriesOpts,
    }, data, el);
  }

  function renderCalibration(snap) {
    const cal = snap.calibration;
    const tbody = document.querySelector("#calibration tbody");
    tbody.innerHTML = "";
    const note = document.querySelector("#calibration-card .note");
    if (!cal) { note.textContent = "no data"; return; }
    document.querySelector("#calibration-card .measured-on").textContent = "Measured on: " + (cal.measured_on || "");
    Object.entries(cal.strategies).forEach(([s, v]) => {
      const tr = row(tbody, [s, v.outcomes, fmt(v.brier), fmt(v.log_loss),
        fmt(v.came_true), fmt(v.mean_predicted), fmt(v.observed_rate)]);
      tr.children[4].title = `${v.success_calls_true || 0} of ${v.success_calls || 0} success calls (p > 0.5) came true`;
      tr.dataset.strategy = s;
      if (v.note) tr.title = v.note;
    });
    note.textContent = `Real outcomes of the last ${snap.alert_window_s} s whose task a probabilistic strategy assigned ` +
      `(${cal.counted} counted). Each is scored with its task's p_success, the shared success model's p whichever ` +
      "strategy decided: a row is that model on the tasks the strategy assigned, not the strategy's own estimator " +
      `(the estimator table below scores those). ${cal.not_counted} other outcome(s) carry no probability (tags, round-robin, or reported by an ` +
      `agent other than the assignee) and are not counted. Scores need ${cal.min_samples} outcomes per strategy. ` +
      "Brier = mean (p − outcome)², 0 best, 0.25 = always saying 0.5; log-loss clips p to [0.001, 0.999]; " +
      "success calls that came true = of the tasks assigned with p_success > 0.5, the share that succeeded (the neural card and " +
      "alert read this cell). Every column but log-loss lies in [0, 1]. The estimator table below scores a different " +
      "set (every estimator's p, whichever strategy decided, since each swarm began), so its neural row may differ.";
  }

  function renderEstimators(snap) {
    const est = snap.estimators;
    const tbody = document.querySelector("#estimators tbody");
    tbody.innerHTML = "";
    const note = document.querySelector("#estimators-card .note");
    if (!est) { note.textContent = "no data"; return; }
    document.querySelector("#estimators-card .measured-on").textContent = "Measured on: " + (est.measured_on || "") +
      (est.prior && est.prior.measured_on ? "; prior columns: " + est.prior.measured_on : "");
    est.swarms.forEach((sw) => {
      const uses = sw.auto.in_this_phase || sw.auto.estimator;
      // The prior columns say their yardstick: recalibrated once the swarm's record is, raw before.
      const recal = sw.prior_yardstick === "recalibrated" ? " (recalibrated)" : "";
      const priorCell = (v) => (v == null ? fmt(v) : fmt(v) + recal);
      sw.scores.forEach((sc) => {
        const tr = row(tbody, [sw.name + " (" + sw.swarm_id + ")", sc.estimator + (sc.estimator === uses ? " ← auto uses" : ""),
          sc.outcomes, fmt(sc.log_loss), fmt(sc.brier), priorCell(sc.prior_log_loss), priorCell(sc.prior_brier), fmt(sc.blended_log_loss),
          sc.recalibrated_log_loss == null ? "no data" : fmt(sc.recalibrated_log_loss) + " (" + sc.kept_outcomes + ")"]);
        tr.dataset.swarm = sw.swarm_id;
        tr.dataset.estimator = sc.estimator;
        tr.title = sw.auto.reason;
      });
    });
    if (est.swarms.length === 0) {
      const tr = row(tbody, ["no swarm has reported outcomes yet"]);
      tr.firstChild.colSpan = 9;
    }
    const p = est.prior;
    const prior = p.present ? `Prior: ${p.file}, ${p.data || "held-out data"}, counted as ${p.weight_outcomes} outcomes.`
      : `Prior: ${p.note}.`;
    note.textContent = `Per swarm, each probabilistic estimator's realised log-loss and Brier on the swarm's real ` +
      `outcomes: raw (its p as given: calibration), and recalibrated out of sample on the newest kept outcomes (how ` +
      `well it orders them: what auto compares once every candidate's can be computed, else the raw one); auto uses ` +
      `the lowest blended log-loss (hover a row for its reason). ${prior} ` +
      `A swarm with no outcomes: auto uses ${est.auto_without_outcomes.estimator}. ` +
      `${est.swarms_with_outcomes} of ${est.swarms_total} swarm(s) have outcomes` + (est.omitted ? `; ${est.omitted} older not shown.` : ".");
  }

  function renderReplay(snap) {
    const r = snap.replay;
    const table = document.getElementById("replay");
    const note = document.querySelector("#replay-card .note");
    table.querySelector("thead").innerHTML = "";
    const tbody = table.querySelector("tbody");
    tbody.innerHTML = "";
    const c = document.getElementById("replay-card");
    if (!r) {
      c.dataset.state = "nodata";
      note.textContent = "no replay run yet: ansf bench --suite replay --repo PATH measures every strategy on a repository's own history";
      return;
    }
    c.dataset.state = "table";
    c.dataset.data = r.data;
    const head = row(table.querySelector("thead"), ["method"].concat(r.cells.map((x) => `${x.window} tasks, tags ${x.tags}`)), "th");
    head.dataset.kind = "head";
    const methods = [];
    r.cells.forEach((x) => Object.keys(x.methods).forEach((m) => { if (!methods.includes(m)) methods.push(m); }));
    const pm = (v) => (v && v.mean !== null ? v.mean.toFixed(3) + (v.ci95 !== null ? " ± " + v.ci95.toFixed(3) : "") : "—");
    methods.forEach((m) => { row(tbody, [m].concat(r.cells.map((x) => pm(x.methods[m])))).dataset.method = m; });
    row(tbody, ["random expectation"].concat(r.cells.map((x) => pm(x.random)))).dataset.method = "random";
    note.textContent = `REAL data: top-1 accuracy (share of tasks given to their real author), mean ± 95 % CI over episodes, on ` +
      `the git history of ${r.repo} at ${(r.head || "").slice(0, 12)} (${r.commits} commits, ${r.authors} authors). ` +
      `Run #${r.id} (${r.suite}) at ${new Date(r.created_at * 1000).toLocaleString()}.`;
  }

  function row(parent, values, tag) {
    const tr = document.createElement("tr");
    values.forEach((v) => { const td = document.createElement(tag || "td"); td.textContent = v; tr.appendChild(td); });
    parent.appendChild(tr);
    return tr;
  }

  // --- text ------------------------------------------------------------------------------------------------------

  function fmt(v, digits) {
    if (v === null || v === undefined) return "no data";
    if (Math.abs(v) >= 1e6) return (v / 1048576).toFixed(0) + " MiB";
    return Number(v).toFixed(digits === undefined ? 3 : digits);
  }

  function fmtBytes(v) {
    if (v === null || v === undefined) return "no data";
    if (v >= 1048576) return (v / 1048576).toFixed(1) + " MiB";
    if (v >= 1024) return (v / 1024).toFixed(0) + " KiB";
    return v + " B";
  }

  function renderFigures(snap) {
    const active = new Set((snap.alerts || []).map((a) => a.name));
    const ruleOf = {};
    Object.entries(snap.thresholds || {}).forEach(([rule, t]) => { ruleOf[t.figure] = [rule, t]; });
    ["calibration_brier", "neural_accuracy", "coordinate_p95_ms", "efficiency"].forEach((k) => {
      const f = snap.figures[k];
      const el = document.getElementById("fig-" + k);
      el.querySelector("b").textContent = fmt(f.value, k.endsWith("_ms") ? 1 : 3) + (f.value !== null && k.endsWith("_ms") ? " ms" : "");
      const r = ruleOf[k];
      el.querySelector("small").textContent = `${f.samples} samples` + (f.note ? ` — ${f.note}` : "") +
        (r ? ` — alert ${r[1].direction} ${r[1].threshold}` : "");
      el.classList.toggle("breach", !!(r && active.has(r[0])));
    });
    const m = snap.memory;
    const fm = document.getElementById("fig-memory");
    fm.querySelector("b").textContent = m.fraction === null ? "no data" : (100 * m.fraction).toFixed(1) + " %";
    fm.querySelector("small").textContent = `${fmtBytes(m.used_bytes)} of ${fmtBytes(m.limit_bytes)} — ${m.source}`;
    const ml = snap.model_load || { value: null, samples: 0, note: "" };
    const fl = document.getElementById("fig-model_load");
    fl.querySelector("b").textContent = ml.value === null ? "no data" : (ml.value / 1000).toFixed(2) + " s";
    fl.querySelector("small").textContent = `${ml.samples} load(s)` + (ml.note ? ` — ${ml.note}` : "");
    const ph = snap.phase;
    let phaseText = `phase: ${ph.phase}`;
    if (ph.last_change) phaseText += ` (last recorded change → ${ph.last_change.to_phase} at ${new Date(ph.last_change.created_at * 1000).toLocaleTimeString()})`;
    const badge = document.getElementById("phase");
    badge.textContent = phaseText;
    badge.title = ph.reason || "";
    card("memory").querySelector(".note").textContent = `${ph.reason || ""}`;
    card("latency").querySelector(".note").textContent = `over coordinate decisions of the last ${snap.alert_window_s} s`;
    card("quality").querySelector(".note").textContent = `measured from real reported outcomes of the last ${snap.alert_window_s} s ` +
      "(Brier: 0 best; the two shares: 1 best); all lie in [0, 1]";
    card("tasks").querySelector(".note").textContent = Object.entries(snap.tasks).map(([k, v]) => `${k} ${v}`).join(", ");
    const r = snap.rates;
    card("rates").querySelector(".note").textContent = `claims/min ${fmt(r.claims_per_min, 2)}, outcomes/min ${fmt(r.outcomes_per_min, 2)}`;
    const sem = snap.semantic;
    const servers = sem && !sem.error ? (sem.servers || []) : [];
    const source = sem && sem.reported_by ? ` (as reported by server process ${sem.reported_by.pid}, ${Math.round(sem.reported_by.age_s)} s ago)` : "";
    card("semantic").querySelector(".note").textContent = !sem ? "no server process on this store has used the semantic tools yet"
      : sem.error ? "error: " + sem.error
      : (servers.length === 0 ? (sem.note || "no language server started yet") + source
        : servers.map((s) => `${s.language}/${s.server}: ${s.alive ? "alive" : "down"}, ${s.requests} requests, ${s.restarts} restarts`).join("; ") + source) +
        (sem.cache && sem.cache.entries !== null && sem.cache.entries !== undefined
          ? ` — cache ${sem.cache.entries} entries, ${fmtBytes(sem.cache.bytes_on_disk)} of ${fmtBytes(sem.cache.budget_bytes)}` : "");
    const tbody = document.querySelector("#trends tbody");
    tbody.innerHTML = "";
    Object.entries(snap.trends || {}).sort().forEach(([s, t]) => {
      const tr = document.createElement("tr");
      const label = state.series[s] ? `${state.series[s].label} (${state.series[s].unit})` : s;
      [label, t.slope_per_min === null ? "no data" : Math.abs(t.slope_per_min) < 1e-9 ? "0" : t.slope_per_min.toPrecision(3), t.direction, t.points].forEach((v) => {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    document.getElementById("updated").textContent = "updated " + new Date(snap.ts * 1000).toLocaleTimeString();
  }

  function renderAlerts(active) {
    const ul = document.getElementById("alerts");
    ul.innerHTML = "";
    if (!active || active.length === 0) {
      ul.innerHTML = '<li class="none">no alerts</li>';
      return;
    }
    active.forEach((a) => {
      if (!state.alertSeenAt[a.id]) state.alertSeenAt[a.id] = { name: a.name, shownAt: Date.now() / 1000, raisedAt: a.raised_at };
      const li = document.createElement("li");
      li.className = "alert " + a.severity;
      li.dataset.name = a.name;
      li.dataset.id = String(a.id);
      li.textContent = `[${a.severity}] ${a.message} — since ${new Date(a.raised_at * 1000).toLocaleTimeString()}`;
      ul.appendChild(li);
    });
  }

  function renderAll() {
    if (!state.snapshot) return;
    renderFigures(state.snapshot);
    renderCalibration(state.snapshot);
    renderReliability(state.snapshot);
    renderEstimators(state.snapshot);
    Object.keys(CHARTS).forEach(renderTimeChart);
    renderBenchmark();
    renderReplay(state.snapshot);
  }

  // --- data ------------------------------------------------------------------------------------------------------

  function addPoints(snap) {
    Object.entries(snap.points || {}).forEach(([s, v]) => {
      const arr = state.hist[s] || (state.hist[s] = []);
      if (arr.length === 0 || arr[arr.length - 1][0] < snap.ts) arr.push([snap.ts, v]);
      if (arr.length > state.ringSize) arr.splice(0, arr.length - state.ringSize);
    });
  }

  function onMessage(ev) {
    if (state.paused) return;
    const msg = JSON.parse(ev.data);
    state.received += 1;
    state.lastMessageAt = Date.now() / 1000;
    if (msg.type === "hello") {
      state.hist = msg.history || {};
      state.series = msg.series || {};
      state.ringSize = msg.ring_size || 1000;
      if (msg.snapshot) { state.snapshot = msg.snapshot; renderAll(); }
      renderAlerts(msg.alerts || (msg.snapshot && msg.snapshot.alerts) || []);
    } else if (msg.type === "snapshot") {
      state.snapshots += 1;
      state.snapshot = msg.snapshot;
      addPoints(msg.snapshot);
      renderAll();
      renderAlerts(msg.snapshot.alerts);
    } else if (msg.type === "alerts") {
      if (state.snapshot) state.snapshot.alerts = msg.active;
      if (state.snapshot && msg.figures) state.snapshot.figures = Object.assign({}, state.snapshot.figures, msg.figures);
      renderAlerts(msg.active);
      if (state.snapshot) renderFigures(state.snapshot);
    }
  }

  function setConn(text, cls) {
    const el = document.getElementById("conn");
    el.textContent = text;
    el.className = "badge conn-" + cls;
  }

  function connect() {
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    const ws = new WebSocket(url.toString());
    state.ws = ws;
    ws.onopen = () => {
      state.connects += 1;
      state.backoff = 1000;
      if (document.hidden) { ws.send(JSON.stringify({ type: "pause" })); state.paused = true; setConn("paused (tab hidden)", "paused"); }
      else setConn("live", "live");
    };
    ws.onmessage = onMessage;
    ws.onclose = (ev) => {
      state.closeCode = ev.code;
      if (state.ws !== ws) return;
      setConn(ev.code === 4401 ? "token required — reconnecting" : "reconnecting", ev.code === 4401 ? "denied" : "reconnecting");
      const wait = state.backoff;
      state.backoff = Math.min(state.backoff * 2, 10000);
      setTimeout(connect, wait);
    };
  }

  document.addEventListener("visibilitychange", () => {
    const ws = state.ws;
    if (document.hidden) {
      state.paused = true;
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "pause" }));
      setConn("paused (tab hidden)", "paused");
    } else {
      state.paused = false;
      if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify({ type: "resume" })); setConn("live", "live"); }
    }
  });

  window.addEventListener("resize", () => {
    Object.values(plots).forEach((u) => u.destroy()); Object.keys(plots).forEach((k) => delete plots[k]);
    delete card("benchmark").querySelector(".chart").dataset.key;
    renderAll();
  });

  Object.keys(CHARTS).forEach((n) => noData(n));
  noData("benchmark", "no benchmark yet");
  noData("reliability");
  connect();
})();
