/* Paloma leaderboard: the only script of the site. No dependencies, no network; works from file://.
   Values from submissions are only ever inserted with textContent or as attribute values, never as HTML. */
"use strict";

const PALOMA = (() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the page's CSP
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of [].concat(children)) if (child) node.append(child);
    return node;
  }

  // -- number formatting (the same rules as paloma/site/render.py) ------------------------------------------
  function fmtMetric(v, metric) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    if (metric === "bpb") return v.toFixed(4);
    if (v >= 1000) return Math.round(v).toLocaleString("en-US");
    return v >= 100 ? v.toFixed(1) : v.toFixed(2);
  }
  function fmtCount(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const units = [["e", 1e18], ["P", 1e15], ["T", 1e12], ["B", 1e9], ["M", 1e6], ["k", 1e3]];
    for (const [unit, scale] of units) {
      if (Math.abs(v) >= scale) {
        if (unit === "e") return v.toExponential(2).replace("e+", "e");
        return Number((v / scale).toPrecision(3)) + unit;
      }
    }
    return String(Math.round(v));
  }
  const fmtPct = (v) => (v > 0 ? "+" : "") + (v * 100).toFixed(1) + "%";

  // Sort with missing values last whatever the direction.
  function compareValues(a, b, dir) {
    const missingA = a === null || a === undefined || a === "" || (typeof a === "number" && !isFinite(a));
    const missingB = b === null || b === undefined || b === "" || (typeof b === "number" && !isFinite(b));
    if (missingA || missingB) return missingA === missingB ? 0 : missingA ? 1 : -1;
    if (typeof a === "string") return dir * a.localeCompare(b);
    return dir * (a - b);
  }

  // -- generic sortable tables (server-rendered rows; numbers in data-v) -------------------------------------
  function initSortableTables() {
    for (const table of $$("table.sortable")) {
      if (table.dataset.sortReady) continue;
      table.dataset.sortReady = "1";
      const headers = $$("thead th", table);
      headers.forEach((th, index) => {
        const button = $("button", th);
        if (!th.dataset.sort || !button) return;
        button.addEventListener("click", () => sortTable(table, th, index));
      });
    }
  }

  function sortTable(table, th, index) {
    const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    for (const other of $$("thead th", table)) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    const body = table.tBodies[0];
    const pinned = $$("tr.macro", body);
    const rows = Array.from(body.rows).filter((row) => !row.classList.contains("macro"));
    const numeric = th.dataset.sort === "num";
    const key = (row) => {
      const cell = row.cells[index];
      if (!cell) return null;
      if (!numeric) return cell.textContent.trim().toLowerCase();
      if (cell.dataset.v !== undefined) return cell.dataset.v === "" ? null : Number(cell.dataset.v);
      const text = cell.textContent.replace(/,/g, "").trim(); // plain integers such as 1,234,567
      return text === "" || isNaN(Number(text)) ? null : Number(text);
    };
    const keyed = rows.map((row) => [key(row), row]);
    keyed.sort((x, y) => compareValues(x[0], y[0], dir));
    body.replaceChildren(...pinned, ...keyed.map((x) => x[1]));
  }

  // -- tabs (source pages) -----------------------------------------------------------------------------------
  function initTabs() {
    for (const list of $$("[role=tablist]")) {
      const tabs = $$("[role=tab]", list);
      const select = (tab) => {
        for (const t of tabs) {
          const on = t === tab;
          t.setAttribute("aria-selected", on ? "true" : "false");
          t.tabIndex = on ? 0 : -1;
          document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
        }
        tab.focus();
      };
      tabs.forEach((tab, i) => {
        tab.addEventListener("click", () => select(tab));
        tab.addEventListener("keydown", (event) => {
          const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
          if (step) select(tabs[(i + step + tabs.length) % tabs.length]);
        });
      });
    }
  }

  // -- chart tooltips and Pareto views -----------------------------------------------------------------------
  function initCharts() {
    const tip = $("#tooltip");
    if (!tip) return;
    const show = (dot, x, y) => {
      tip.replaceChildren(el("strong", { text: dot.dataset.tip }), el("span", { text: dot.dataset.detail }));
      tip.hidden = false;
      const w = tip.offsetWidth;
      tip.style.left = Math.min(x + 14, window.innerWidth - w - 8) + "px";
      tip.style.top = y + 14 + "px";
      dot.classList.add("active");
    };
    const hide = (dot) => {
      tip.hidden = true;
      dot.classList.remove("active");
    };
    for (const dot of $$(".dot")) {
      dot.addEventListener("mouseenter", (e) => show(dot, e.clientX, e.clientY));
      dot.addEventListener("mousemove", (e) => show(dot, e.clientX, e.clientY));
      dot.addEventListener("mouseleave", () => hide(dot));
      dot.addEventListener("focus", () => {
        const r = dot.getBoundingClientRect();
        show(dot, r.right, r.bottom);
      });
      dot.addEventListener("blur", () => hide(dot));
    }
    for (const radio of $$("input[name=pareto-view]")) {
      radio.addEventListener("change", () => {
        for (const view of $$(".pareto-view")) view.hidden = view.dataset.view !== radio.value;
      });
    }
  }

  // -- the leaderboard ---------------------------------------------------------------------------------------
  function initLeaderboard() {
    const script = $("#leaderboard-data");
    if (!script) return;
    const data = JSON.parse(script.textContent);
    const table = $("#leaderboard");
    const form = $("#controls");
    // On a phone the filters fold away (the table is what the first screen is for); the summary opens them.
    const filters = $("#filters");
    if (filters && window.matchMedia("(max-width: 760px)").matches) filters.open = false;
    const status = $("#status");
    const compareLink = $("#compare-link");
    const sourceIndex = new Map(data.sources.map((s, i) => [s.name, i]));
    // Only the first `limit` rows are in the page at a time, so a sort or a filter stays instant with
    // thousands of submissions; "Show more" raises the limit.
    const PAGE = 100;
    const state = { sortKey: "rank", sortDir: 1, picked: [], limit: PAGE, hidden: new Set() };
    const more = $("#show-more");
    const chooser = $("#chooser-body");
    const initial = new URLSearchParams(location.hash.slice(1));
    if (initial.get("sort")) [state.sortKey, state.sortDir] = [initial.get("sort"), initial.get("dir") === "desc" ? -1 : 1];
    for (const name of (initial.get("hide") || "").split(",")) if (sourceIndex.has(name)) state.hidden.add(name);
    readHash(form);
    form.addEventListener("submit", (event) => event.preventDefault());

    function settings() {
      const f = new FormData(form);
      return {
        metric: f.get("metric"),
        decon: f.has("decon"),
        order: f.has("order"),
        vocab: f.has("vocab"),
        group: f.get("group"),
        checkpoints: f.get("checkpoints"),
        pmin: f.get("pmin") ? Number(f.get("pmin")) : null,
        pmax: f.get("pmax") ? Number(f.get("pmax")) : null,
        protocol: f.get("protocol") || "paloma",
        q: (f.get("q") || "").trim().toLowerCase(),
      };
    }

    function visibleRows(s) {
      return data.rows.filter((r) => {
        if ((r.protocol || "paloma") !== s.protocol) return false; // other presets are shown apart, never mixed
        if (s.decon && r.evidence !== "checked") return false;
        if (s.pmin !== null && r.params < s.pmin) return false;
        if (s.pmax !== null && r.params > s.pmax) return false;
        if (s.order && !r.order) return false;
        if ((s.vocab || s.metric === "ppl") && !r.vocab) return false;
        if (s.checkpoints === "final" && !r.final) return false;
        if (s.checkpoints !== "final" && s.checkpoints !== "all" && r.frac !== Number(s.checkpoints)) return false;
        if (s.q && !(r.label.toLowerCase().includes(s.q) || r.org.toLowerCase().includes(s.q) || r.name.includes(s.q)))
          return false;
        return true;
      });
    }

    function columns(s) {
      const group = data.groups.find((g) => g.key === s.group) || data.groups[0];
      const cols = [
        { key: "rank", label: "#", num: true, title: "Rank within the rows shown, by the suite value; ⇅ p%: the next model comes out ahead in p% of resamples of domains (hover for the rank interval); tick two rows to compare them" },
        { key: "model", label: "Model", num: false },
        { key: "suite", label: group.label, num: true, suite: true, title: "Macro average over the sources of this group" },
        { key: "guidelines", label: "Guidelines", sortable: false },
        { key: "params", label: "Params", num: true, title: "Parameters (all)" },
        { key: "tokens", label: "Tokens", num: true, title: "Training tokens" },
      ];
      if (s.checkpoints !== "final") cols.push({ key: "frac", label: "LR %", num: true, title: "Fraction of the LR schedule" });
      for (const name of group.sources) {
        if (state.hidden.has(name)) continue;
        const src = data.sources[sourceIndex.get(name)];
        cols.push({ key: "src:" + name, label: src.label, num: true, metric: true, title: src.label + " (" + src.domains + " domains)" });
      }
      cols[2].metric = true;
      return cols;
    }

    // The column chooser: one checkbox per source of the selected group (the suite value stays).
    function renderChooser(s) {
      const group = data.groups.find((g) => g.key === s.group) || data.groups[0];
      if (state.chooserGroup === group.key) {
        // same boxes: update them in place, so a keyboard user keeps focus on the box just toggled
        for (const box of $$("input[data-source]", chooser)) box.checked = !state.hidden.has(box.dataset.source);
        return;
      }
      state.chooserGroup = group.key;
      const boxes = group.sources.map((name) => {
        const src = data.sources[sourceIndex.get(name)];
        const box = el("input", { type: "checkbox", "data-source": name });
        box.checked = !state.hidden.has(name);
        box.addEventListener("change", (event) => {
          event.stopPropagation();
          if (box.checked) state.hidden.delete(name);
          else state.hidden.add(name);
          render();
        });
        return el("label", {}, [box, " " + src.label]);
      });
      const all = el("button", { type: "button", class: "button ghost", text: "All" });
      all.addEventListener("click", () => {
        for (const name of group.sources) state.hidden.delete(name);
        render();
      });
      const none = el("button", { type: "button", class: "button ghost", text: "None" });
      none.addEventListener("click", () => {
        for (const name of group.sources) state.hidden.add(name);
        render();
      });
      chooser.replaceChildren(...boxes, el("span", { class: "chooser-actions" }, [all, none]));
    }

    function cellValue(row, key, s, ranks) {
      if (key === "rank") return ranks.get(row);
      if (key === "model") return row.label.toLowerCase();
      if (key === "params") return row.params;
      if (key === "tokens") return row.tokens;
      if (key === "frac") return row.frac;
      if (key === "suite") return (row.suite[s.group] || {})[s.metric];
      if (key.startsWith("src:")) return row[s.metric][sourceIndex.get(key.slice(4))];
      return null;
    }

    function rankRows(rows, s) {
      const scored = rows.filter((r) => isFinite((r.suite[s.group] || {})[s.metric] ?? NaN));
      scored.sort((a, b) => a.suite[s.group][s.metric] - b.suite[s.group][s.metric]);
      const ranks = new Map();
      let previous = null;
      let rank = 0;
      scored.forEach((r, i) => {
        const v = r.suite[s.group][s.metric];
        if (v !== previous) [rank, previous] = [i + 1, v];
        ranks.set(r, rank);
      });
      return ranks;
    }

    function badge(on, text, title) {
      return el("span", { class: "badge " + (on ? "on" : "off"), title, text });
    }

    function renderHead(cols) {
      const tr = el("tr");
      for (const col of cols) {
        const attrs = { scope: "col", class: (col.num ? "num" : "") + (col.suite ? " suite" : ""), title: col.title };
        if (col.key === "model") attrs.class = "model-col";
        if (col.key === "rank") attrs.class = "num rank-col";
        if (col.sortable === false) {
          tr.append(el("th", attrs, col.label));
          continue;
        }
        const th = el("th", { ...attrs, "data-sort": col.num ? "num" : "text", "data-key": col.key });
        if (state.sortKey === col.key) th.setAttribute("aria-sort", state.sortDir === 1 ? "ascending" : "descending");
        const button = el("button", { type: "button" }, [col.label, el("span", { class: "arrow", "aria-hidden": "true" })]);
        button.addEventListener("click", () => {
          state.sortDir = state.sortKey === col.key ? -state.sortDir : 1;
          state.sortKey = col.key;
          render();
          const again = $(`th[data-key="${CSS.escape(col.key)}"] button`, table);
          if (again) again.focus();
        });
        th.append(button);
        tr.append(th);
      }
      table.tHead.replaceChildren(tr);
    }

    // Rank stability (computed at build time for the default view of each group and metric: final models,
    // and for perplexity those with the fixed vocabulary): the rank's interval when domains are resampled,
    // and how often the next model would come out ahead. Other views change the ranking, so show nothing.
    function stability(row, s) {
      const defaultView = s.checkpoints === "final" && !s.decon && !s.order && (s.metric === "ppl" || !s.vocab);
      const stab = defaultView ? (row.stab || {})[s.group + "/" + s.metric] : null;
      if (!stab) return null;
      const [lo, hi, flip] = stab;
      const pct = flip === null ? null : (100 * flip).toFixed(flip < 0.1 ? 1 : 0) + "%";
      let title = `${Math.round(100 * data.stability.level)}% rank interval ${lo}–${hi} when domains are resampled`;
      if (pct !== null) title += `; the next model comes out ahead in ${pct} of ${data.stability.replicates} resamples`;
      // Shown as text beside the rank (not on hover only): the rank's interval, and the flip rate where it matters.
      const mark = flip !== null && flip >= 0.01 ? " ⇅" + pct : "";
      return el("span", { class: "stab" + (mark ? "" : " steady"), title, text: `${lo}–${hi}${mark}` });
    }

    function renderRow(row, cols, s, ranks) {
      const tr = el("tr", { class: ranks.get(row) === 1 ? "top1" : null });
      for (const col of cols) {
        if (col.key === "rank") {
          const box = el("input", { type: "checkbox", "data-name": row.name, "aria-label": "Select " + row.label + " to compare" });
          box.checked = state.picked.includes(row.name);
          box.addEventListener("change", () => pick(row.name, box.checked));
          const rank = el("span", { class: "rank-value", text: ranks.has(row) ? String(ranks.get(row)) : "–" });
          tr.append(el("td", { class: "rank num" }, el("label", { class: "pick" }, [box, rank, stability(row, s)])));
        } else if (col.key === "model") {
          const link = el("a", { href: "models/" + encodeURIComponent(row.name) + ".html", text: row.label, title: row.label });
          const org = el("span", { class: "org", text: row.org, title: row.org });
          const apart = row.protocol && row.protocol !== "paloma" ? el("span", { class: "badge apart", text: row.protocol + " preset" }) : null;
          tr.append(el("td", { class: "model-col" }, [link, org, apart]));
        } else if (col.key === "guidelines") {
          const evidence = row.evidence === "checked" ? "D" : row.decon ? "d" : "D";
          const claimed = row.evidence === "unverified" ? "Decontamination claimed (report not checked: the release has no manifest)" : "Decontamination claimed (linked report, not checked)";
          const decon = badge(row.decon, evidence, row.evidence === "checked" ? "Decontaminated (report checked)" : row.decon ? claimed : "Not decontaminated");
          if (row.decon && row.evidence !== "checked") decon.className = "badge weak";
          const badges = el("span", { class: "badges mini" }, [
            decon,
            badge(row.order, "O", row.order ? "Fixed training order" : "Training order not fixed"),
            badge(row.vocab, "V", row.vocab ? "Fixed vocabulary" : "Own vocabulary"),
          ]);
          tr.append(el("td", {}, badges));
        } else if (col.key === "params" || col.key === "tokens") {
          const declared = col.key === "tokens" || row.declared;
          tr.append(el("td", { class: "num" + (declared ? " declared" : ""), text: fmtCount(row[col.key]), title: declared ? "Declared by the submitter" : "Counted from the safetensors weights" }));
        } else if (col.key === "frac") {
          tr.append(el("td", { class: "num", text: row.frac === null ? "–" : (row.frac * 100).toFixed(0) + "%" }));
        } else {
          const v = cellValue(row, col.key, s, ranks);
          const best = col.metric && v !== null && v !== undefined && v === bests.get(col.key);
          const cls = "num" + (col.suite ? " suite" : "") + (best ? " best" : "");
          tr.append(el("td", { class: cls, text: fmtMetric(v, s.metric), title: best ? "Best in this column among the rows shown" : null }));
        }
      }
      return tr;
    }

    // The lowest (best) value of each metric column among the rows that match the filters.
    let bests = new Map();
    function bestValues(rows, cols, s, ranks) {
      const out = new Map();
      for (const col of cols) {
        if (!col.metric) continue;
        const values = rows.map((r) => cellValue(r, col.key, s, ranks)).filter((v) => v !== null && v !== undefined && isFinite(v));
        if (values.length > 1) out.set(col.key, Math.min(...values));
      }
      return out;
    }

    function render() {
      const s = settings();
      const cols = columns(s);
      if (!cols.some((c) => c.key === state.sortKey)) [state.sortKey, state.sortDir] = ["rank", 1];
      writeHash(form, state);
      renderChooser(s);
      const group = visibleRows({ ...s, q: "" }); // the search finds rows; it does not change their rank
      const ranks = rankRows(group, s);
      const rows = s.q ? visibleRows(s) : group;
      const keyed = rows.map((r) => [cellValue(r, state.sortKey, s, ranks), r]);
      keyed.sort((a, b) => compareValues(a[0], b[0], state.sortDir) || compareValues(ranks.get(a[1]), ranks.get(b[1]), 1));
      renderHead(cols);
      bests = bestValues(rows, cols, s, ranks);
      const body = document.createDocumentFragment();
      for (const [, row] of keyed.slice(0, state.limit)) body.append(renderRow(row, cols, s, ranks));
      table.tBodies[0].replaceChildren(body);
      const shown = Math.min(rows.length, state.limit);
      more.hidden = shown >= rows.length;
      more.textContent = `Show ${Math.min(PAGE, rows.length - shown)} more (${rows.length - shown} not shown)`;
      const metricName = s.metric === "ppl" ? "perplexity" : "bits per byte";
      const count = shown < rows.length ? `${shown} shown of ${rows.length} matching` : `${rows.length}`;
      status.textContent = `${count} of ${data.rows.length} submissions · ${metricName} (lower is better) · ranked within the selected group`;
    }

    function pick(name, on) {
      state.picked = state.picked.filter((n) => n !== name);
      if (on) state.picked.push(name);
      if (state.picked.length > 2) state.picked.shift();
      const ready = state.picked.length === 2;
      compareLink.textContent = `Compare selected (${state.picked.length}/2)`;
      compareLink.classList.toggle("disabled", !ready);
      compareLink.setAttribute("aria-disabled", ready ? "false" : "true");
      compareLink.href = ready ? `compare.html#a=${encodeURIComponent(state.picked[0])}&b=${encodeURIComponent(state.picked[1])}` : "compare.html";
      for (const box of $$("td.rank input", table)) box.checked = state.picked.includes(box.dataset.name);
    }

    const rerender = () => {
      state.limit = PAGE;
      render();
    };
    form.addEventListener("change", rerender);
    form.addEventListener("input", (e) => e.target.name === "q" && rerender());
    more.addEventListener("click", () => {
      state.limit += PAGE;
      render();
    });
    render();
  }

  // The leaderboard's settings live in the URL hash (filters, sort, hidden columns), so a view can be shared.
  function writeHash(form, state) {
    const f = new FormData(form);
    const params = new URLSearchParams();
    for (const [key, value] of f.entries()) if (value !== "" && !(key === "metric" && value === "bpb")) params.set(key, value);
    for (const [key, value] of [["group", "all"], ["checkpoints", "final"], ["protocol", "paloma"]]) if (params.get(key) === value) params.delete(key);
    if (state && state.sortKey !== "rank") params.set("sort", state.sortKey);
    if (state && state.sortDir === -1) params.set("dir", "desc");
    if (state && state.hidden.size) params.set("hide", Array.from(state.hidden).sort().join(","));
    const hash = params.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname);
  }
  function readHash(form) {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const [key, value] of params.entries()) {
      const field = form.elements[key];
      if (!field) continue;
      if (field instanceof RadioNodeList) for (const r of field) r.checked = r.value === value;
      else if (field.type === "checkbox") field.checked = true;
      else if ($$("option", field).some((o) => o.value === value) || field.type === "search") field.value = value;
    }
  }

  // -- comparison of two models ------------------------------------------------------------------------------
  const loaded = new Map();
  const waiting = new Map();
  function registerModel(payload) {
    loaded.set(payload.name, payload);
    for (const resolve of waiting.get(payload.name) || []) resolve(payload);
    waiting.delete(payload.name);
  }
  function loadModel(name) {
    if (loaded.has(name)) return Promise.resolve(loaded.get(name));
    return new Promise((resolve, reject) => {
      if (!waiting.has(name)) {
        waiting.set(name, []);
        const tag = el("script", { src: "data/models/" + encodeURIComponent(name) + ".js" });
        tag.addEventListener("error", () => reject(new Error("cannot load the data of " + name)));
        document.body.append(tag);
      }
      waiting.get(name).push(resolve);
    });
  }

  function initCompare() {
    const script = $("#compare-data");
    if (!script) return;
    const data = JSON.parse(script.textContent);
    const byName = new Map(data.models.map((m) => [m.name, m]));
    const form = $("#compare-form");
    const pickA = $("#pick-a");
    const pickB = $("#pick-b");
    const out = $("#compare-out");
    const params = new URLSearchParams(location.hash.slice(1));
    const first = data.models[0] ? data.models[0].name : null;
    const second = data.models[1] ? data.models[1].name : first;
    pickA.value = byName.has(params.get("a")) ? params.get("a") : first;
    pickB.value = byName.has(params.get("b")) ? params.get("b") : pickA.value === first ? second : first;
    if (params.get("metric") === "ppl") form.elements.metric.value = "ppl";
    form.addEventListener("submit", (event) => event.preventDefault());

    async function update() {
      const [a, b] = [byName.get(pickA.value), byName.get(pickB.value)];
      if (!a || !b) return;
      const pplAllowed = a.vocab && b.vocab;
      const pplRadio = $("input[name=metric][value=ppl]", form);
      pplRadio.disabled = !pplAllowed;
      pplRadio.parentElement.title = pplAllowed ? "" : "Perplexity needs both models to use the fixed vocabulary";
      if (!pplAllowed) form.elements.metric.value = "bpb";
      const metric = form.elements.metric.value;
      const hash = `#a=${encodeURIComponent(a.name)}&b=${encodeURIComponent(b.name)}` + (metric === "ppl" ? "&metric=ppl" : "");
      history.replaceState(null, "", hash);
      try {
        const [da, db] = await Promise.all([loadModel(a.name), loadModel(b.name)]);
        out.replaceChildren(...renderComparison(a, b, da, db, data.domains, metric));
        initSortableTables();
      } catch (err) {
        out.replaceChildren(el("p", { class: "worse", text: err.message }));
      }
    }
    pickA.addEventListener("change", update);
    pickB.addEventListener("change", update);
    for (const radio of $$("input[name=metric]", form)) radio.addEventListener("change", update);
    $("#swap").addEventListener("click", () => {
      [pickA.value, pickB.value] = [pickB.value, pickA.value];
      update();
    });
    update();
  }

  // Half-width of an interval difference from two independent intervals (wider than a paired interval).
  const halfWidth = (ci) => (ci ? (ci[1] - ci[0]) / 2 : null);
  function combined(ca, cb) {
    const [ha, hb] = [halfWidth(ca), halfWidth(cb)];
    return ha === null || hb === null ? null : Math.sqrt(ha * ha + hb * hb);
  }

  function renderComparison(a, b, da, db, domains, metric) {
    const metricName = metric === "ppl" ? "perplexity" : "bits per byte";
    const rows = [];
    domains.forEach(([source, domain], i) => {
      const va = da[metric][i];
      const vb = db[metric][i];
      if (va === null || vb === null || !isFinite(va) || !isFinite(vb)) return;
      const hw = combined((da[metric + "_ci"] || [])[i], (db[metric + "_ci"] || [])[i]);
      rows.push({ source, domain, va, vb, diff: vb - va, rel: va ? (vb - va) / va : 0, hw });
    });
    const winsA = rows.filter((r) => r.va < r.vb).length;
    const winsB = rows.filter((r) => r.vb < r.va).length;
    const ties = rows.length - winsA - winsB;
    const share = (n) => (rows.length ? (100 * n) / rows.length : 0);
    const bar = el("div", { class: "wins", role: "img", "aria-label": `A wins ${winsA}, B wins ${winsB}, ties ${ties} of ${rows.length} domains` });
    for (const [cls, n, label] of [["a", winsA, "A"], ["tie", ties, "tie"], ["b", winsB, "B"]]) {
      if (n) bar.append(el("div", { class: cls, style: { width: `${share(n)}%` }, text: `${label} ${share(n).toFixed(0)}%` }));
    }
    const summary = el("section", { class: "cards" }, [
      card(["A: ", a.label], fmtMetric(a[metric], metric), `${metricName}, macro over sources`),
      card(["B: ", b.label], fmtMetric(b[metric], metric), `${metricName}, macro over sources`),
      card(["Domains won by A"], `${winsA} (${share(winsA).toFixed(1)}%)`, `of ${rows.length} domains`),
      card(["Domains won by B"], `${winsB} (${share(winsB).toFixed(1)}%)`, ties ? `${ties} tied` : "no ties"),
    ]);
    const byRel = rows.slice().sort((x, y) => x.rel - y.rel);
    const improved = byRel.filter((r) => r.rel < 0).slice(0, 10);
    const regressed = byRel.filter((r) => r.rel > 0).reverse().slice(0, 10);
    const lists = el("div", { class: "split-lists" }, [
      el("section", {}, [el("h2", { text: "Most improved (B better than A)" }), diffTable(improved, metric, false)]),
      el("section", {}, [el("h2", { text: "Most regressed (B worse than A)" }), diffTable(regressed, metric, false)]),
    ]);
    const sources = el("section", {}, [el("h2", { text: "By source (macro over its domains)" }), diffTable(sourceRows(rows), metric, true, true)]);
    const all = el("section", {}, [el("h2", { text: `All ${rows.length} domains` }), diffTable(rows, metric, true)]);
    const note = `Compared in ${metricName}${metric === "bpb" && a.vocab !== b.vocab ? " (the vocabularies differ)" : ""}; B relative to A.`;
    return [el("p", { class: "muted", text: note }), summary, bar, sources, lists, all];
  }

  // A source's difference is the mean of its domains' differences; its interval exists when every domain has one.
  function sourceRows(rows) {
    const bySource = new Map();
    for (const r of rows) {
      if (!bySource.has(r.source)) bySource.set(r.source, []);
      bySource.get(r.source).push(r);
    }
    return Array.from(bySource, ([source, list]) => {
      const mean = (key) => list.reduce((t, r) => t + r[key], 0) / list.length;
      const withCi = list.every((r) => r.hw !== null);
      const hw = withCi ? Math.sqrt(list.reduce((t, r) => t + r.hw * r.hw, 0)) / list.length : null;
      const va = mean("va");
      return { source, domain: `${list.length} domain${list.length === 1 ? "" : "s"}`, va, vb: mean("vb"), diff: mean("vb") - va, rel: va ? (mean("vb") - va) / va : 0, hw };
    });
  }

  // The label's first part is a fixed caption; a model name after it keeps its own case.
  function card(label, value, note) {
    const [caption, name] = label;
    return el("div", { class: "card" }, [
      el("div", { class: "card-label" }, [caption, name ? el("span", { class: "card-name", text: name, title: name }) : null]),
      el("div", { class: "card-value", text: value }),
      el("div", { class: "card-note", text: note }),
    ]);
  }

  function signed(v, metric) {
    return (v > 0 ? "+" : v < 0 ? "−" : "") + fmtMetric(Math.abs(v), metric);
  }

  function diffTable(rows, metric, sortable, bySource = false) {
    if (!rows.length) return el("p", { class: "muted", text: "None." });
    const labels = [bySource ? "Source" : "Source", bySource ? "Domains" : "Domain", "A", "B", "B − A", "≈95% interval", "Change"];
    const head = labels.map((label, i) =>
      sortable && i !== 5
        ? el("th", { scope: "col", "data-sort": i < 2 ? "text" : "num", class: i < 2 ? "" : "num" }, el("button", { type: "button" }, [label, el("span", { class: "arrow", "aria-hidden": "true" })]))
        : el("th", { scope: "col", class: i < 2 ? "" : "num", text: label }),
    );
    const body = el("tbody");
    for (const r of rows) {
      const significant = r.hw !== null && Math.abs(r.diff) > r.hw;
      const cls = r.rel < 0 ? "num better" : r.rel > 0 ? "num worse" : "num";
      const ci = r.hw === null ? "–" : `${signed(r.diff - r.hw, metric)} … ${signed(r.diff + r.hw, metric)}`;
      body.append(
        el("tr", {}, [
          el("td", { text: r.source }),
          el("td", { text: r.domain }),
          el("td", { class: "num", "data-v": r.va, text: fmtMetric(r.va, metric) }),
          el("td", { class: "num", "data-v": r.vb, text: fmtMetric(r.vb, metric) }),
          el("td", { class: cls, "data-v": r.diff, text: signed(r.diff, metric) }),
          el("td", { class: "num ci" + (significant ? " significant" : ""), text: ci, title: r.hw === null ? "no interval: a submission lacks one, or too few documents" : significant ? "the interval excludes 0" : "the interval includes 0" }),
          el("td", { class: cls, "data-v": r.rel, text: fmtPct(r.rel) }),
        ]),
      );
    }
    return el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Per-domain differences" }, el("table", { class: sortable ? "sortable" : "" }, [el("thead", {}, el("tr", {}, head)), body]));
  }

  document.addEventListener("DOMContentLoaded", () => {
    initSortableTables();
    initTabs();
    initCharts();
    initLeaderboard();
    initCompare();
  });

  return { registerModel, fmtMetric, fmtCount };
})();
