/* sdshape publish: the index's filters and a timeline page's chart (uPlot, vendored beside this file).
   Each page embeds its data as JSON (#dashboard-data): nothing is fetched, so file:// works too. */
(function () {
  "use strict";
  const COLORS = {
    version: "#7b3fa0", reference: "#d9822b", method: "#888888",
    regression: "#c62828", improvement: "#2e7d32", other: "#9e9e9e",
  };
  const DASHES = { version: [2, 3], reference: [8, 3, 2, 3], method: [1, 2] };

  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  if (document.body.dataset.page === "index") setUpFilters();
  if (document.body.dataset.page === "series") drawTimeline(data);

  /* Index: a row shows when it matches every chosen filter (a timeline's drivers are "|"-joined). */
  function setUpFilters() {
    const selects = Array.from(document.querySelectorAll("select[data-filter]"));
    const rows = Array.from(document.querySelectorAll("#timelines tbody tr"));
    const count = document.getElementById("shown-count");
    function apply() {
      let shown = 0;
      for (const row of rows) {
        const matches = selects.every(
          (s) => !s.value || (row.dataset[s.dataset.filter] || "").split("|").includes(s.value));
        row.hidden = !matches;
        if (matches) shown += 1;
      }
      count.textContent = shown + " of " + rows.length + " shown";
    }
    selects.forEach((s) => s.addEventListener("change", apply));
    apply();
  }

  function segmentOf(afters, index) {
    return afters.filter((after) => after < index).length;
  }

  /* Series: each run's median (ms), each segment's level ± 2 run-to-run sigma as a band, and the
     events and steps as vertical lines between the two runs they separate. */
  function drawTimeline(t) {
    const element = document.getElementById("chart");
    const n = t.points.length;
    if (!element || n === 0) return;
    const xs = t.points.map((_, i) => i);
    const ys = t.points.map((p) => (p.median == null ? null : p.median * 1e3));
    const afters = t.steps.map((s) => s.after).sort((a, b) => a - b);
    const sigma = t.run_to_run || 0;
    const segments = (t.levels || []).map((level, k) => ({
      first: k === 0 ? 0 : afters[k - 1] + 1,
      last: k < afters.length ? afters[k] : n - 1,
      low: level == null ? null : level * 1e3 * (1 - 2 * sigma),
      high: level == null ? null : level * 1e3 * (1 + 2 * sigma),
    }));
    const known = ys.filter((y) => y != null).concat(
      segments.flatMap((s) => [s.low, s.high]).filter((y) => y != null),
      (t.throttled || []).filter((p) => p.median != null).map((p) => p.median * 1e3));
    let low = Math.min(...known), high = Math.max(...known);
    const pad = (high - low) * 0.08 || Math.abs(high) * 0.05 || 1;
    low -= pad; high += pad;

    function band(u) {
      const ctx = u.ctx;
      ctx.save();
      ctx.fillStyle = "rgba(33, 150, 243, 0.15)";
      for (const s of segments) {
        if (s.low == null) continue;
        const x0 = u.valToPos(s.first - 0.4, "x", true), x1 = u.valToPos(s.last + 0.4, "x", true);
        const y0 = u.valToPos(s.high, "y", true), y1 = u.valToPos(s.low, "y", true);
        ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
      }
      ctx.restore();
    }

    function line(u, at, color, dash, label, row) {
      const ctx = u.ctx, x = u.valToPos(at + 0.5, "x", true);
      const top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
      ctx.save();
      ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.setLineDash(dash.map((d) => d * devicePixelRatio));
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.font = (11 * devicePixelRatio) + "px sans-serif";
      ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";
      ctx.fillText(label, x + 4 * devicePixelRatio, top + (14 + 14 * row) * devicePixelRatio);
      ctx.restore();
    }

    function throttled(u) {
      const ctx = u.ctx, r = 4 * devicePixelRatio;
      ctx.save();
      ctx.strokeStyle = COLORS.other; ctx.lineWidth = 1.5 * devicePixelRatio;
      for (const p of t.throttled || []) {
        if (p.median == null) continue;
        const x = u.valToPos(p.at, "x", true), y = u.valToPos(p.median * 1e3, "y", true);
        ctx.beginPath(); ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r);
        ctx.moveTo(x - r, y + r); ctx.lineTo(x + r, y - r); ctx.stroke();
      }
      ctx.restore();
    }

    function marks(u) {
      throttled(u);
      t.events.forEach((e, i) => line(u, e.after, COLORS[e.kind] || COLORS.version,
        DASHES[e.kind] || DASHES.version, e.label, i % 3));
      t.steps.forEach((s) => {
        const color = COLORS[s.verdict] || COLORS.other;
        const change = s.change == null ? "" : " " + (s.change > 0 ? "+" : "") + (s.change * 100).toFixed(1) + "%";
        line(u, s.after, color, [6, 4], s.verdict + change, 3);
      });
    }

    const options = {
      width: element.clientWidth || 900,
      height: 380,
      scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: [low, high] } },
      axes: [
        {
          incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
          values: (u, splits) => splits.map((i) => (t.points[i] ? t.points[i].when.slice(5, 16).replace("T", " ") : "")),
        },
        { label: "median time per call (ms)", size: 70 },
      ],
      series: [
        { label: "run", value: (u, i) => (i == null || !t.points[i] ? "-" : t.points[i].label) },
        { label: "median (ms)", stroke: "#1565c0", width: 1.5, points: { size: 7, fill: "#1565c0" },
          value: (u, v) => (v == null ? "-" : v.toFixed(3)) },
      ],
      hooks: { drawClear: [band], draw: [marks] },
    };
    const columns = [xs, ys];
    const reference = t.reference_series;
    if (reference && reference.values.some((v) => v != null)) {
      options.scales.reference = {};
      options.axes.push({ scale: "reference", side: 1, grid: { show: false }, size: 70,
        label: "reference " + reference.name + (reference.unit ? " (" + reference.unit + ")" : "") });
      options.series.push({ label: "reference " + reference.name, scale: "reference", stroke: COLORS.reference,
        width: 1, dash: [4, 3], points: { size: 4, fill: COLORS.reference },
        value: (u, v) => (v == null ? "-" : v.toPrecision(4)) });
      columns.push(reference.values);
    }
    const chart = new uPlot(options, columns, element);
    window.addEventListener("resize", () => chart.setSize({ width: element.clientWidth || 900, height: 380 }));
  }
})();
