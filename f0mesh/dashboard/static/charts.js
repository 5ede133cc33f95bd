// Small inline-SVG time-series charts for a link's QoS history (no library).

import { clock, fmtFigure, h, isNum, s } from "./util.js";

const W = 320;
const H = 120;
const LEFT = 44; // room for the value ticks
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 20; // room for the time ticks
const TIME_TICKS = 3;

const SERIES = [
  { field: "rtt_ms", label: "RTT", unit: "ms", cls: "rtt" },
  { field: "jitter_ms", label: "Jitter", unit: "ms", cls: "jitter" },
  { field: "loss_pct", label: "Loss", unit: "%", cls: "loss" },
  { field: "bitrate_kbps", label: "Bitrate", unit: "kbps", cls: "bitrate" },
];

/** A figure per QoS field plus a health strip, from samples sorted oldest first. */
export function historyCharts(samples) {
  const wrap = h("div", { class: "charts" });
  if (!samples.length) {
    wrap.append(h("p", { class: "muted", text: "No samples stored yet: the first arrives one QoS interval after the link opens." }));
    return wrap;
  }
  const t0 = samples[0].at;
  const t1 = Math.max(samples[samples.length - 1].at, t0 + 1);
  for (const series of SERIES) wrap.append(lineChart(samples, series, t0, t1));
  wrap.append(healthStrip(samples, t0, t1));
  return wrap;
}

/** A short number for an axis tick: 0, 2.5, 40, 1.2k. */
function tickText(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
}

function lineChart(samples, { field, label, unit, cls }, t0, t1) {
  const points = samples.filter((p) => isNum(p[field])).map((p) => [p.at, p[field]]);
  const values = points.map((p) => p[1]);
  const last = values.length ? values[values.length - 1] : null;
  const max = values.length ? Math.max(...values) : 0;
  const min = values.length ? Math.min(...values) : 0;
  const top = max > 0 ? max * 1.1 : 1;
  const x = (t) => LEFT + ((t - t0) / (t1 - t0)) * (W - LEFT - RIGHT);
  const y = (v) => H - BOTTOM - (v / top) * (H - TOP - BOTTOM);
  const title = `${label} (${unit})`;
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": values.length
      ? `${title} from ${clock(t0)} to ${clock(t1)}: min ${fmtFigure(field, min)}, max ${fmtFigure(field, max)}, latest ${fmtFigure(field, last)}`
      : `${title}: not measured yet`,
    dataset: { field },
  });
  const axes = s("g", { class: "axes", "aria-hidden": "true" });
  axes.append(
    s("line", { class: "axis", x1: LEFT, y1: H - BOTTOM, x2: W - RIGHT, y2: H - BOTTOM }),
    s("line", { class: "axis", x1: LEFT, y1: TOP, x2: LEFT, y2: H - BOTTOM }),
  );
  for (const v of [0, top / 2, top]) {
    axes.append(
      s("line", { class: "grid", x1: LEFT, y1: y(v).toFixed(1), x2: W - RIGHT, y2: y(v).toFixed(1) }),
      s("text", { class: "tick y", x: LEFT - 4, y: (y(v) + 3).toFixed(1), "text-anchor": "end", text: tickText(v) }),
    );
  }
  for (let i = 0; i <= TIME_TICKS; i++) {
    const t = t0 + ((t1 - t0) * i) / TIME_TICKS;
    const anchor = i === 0 ? "start" : i === TIME_TICKS ? "end" : "middle";
    axes.append(
      s("line", { class: "axis", x1: x(t).toFixed(1), y1: H - BOTTOM, x2: x(t).toFixed(1), y2: H - BOTTOM + 3 }),
      s("text", { class: "tick x", x: x(t).toFixed(1), y: H - 5, "text-anchor": anchor, text: clock(t) }),
    );
  }
  svg.append(axes);
  if (points.length) {
    const line = points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const first = points[0];
    const lastPt = points[points.length - 1];
    svg.append(
      s("polygon", {
        class: "area",
        points: `${x(first[0]).toFixed(1)},${H - BOTTOM} ${line} ${x(lastPt[0]).toFixed(1)},${H - BOTTOM}`,
      }),
      s("polyline", { class: "line", points: line }),
    );
  }
  return h(
    "figure",
    { class: `chart ${cls}` },
    h(
      "figcaption",
      {},
      h("span", {}, h("span", { class: "axis-title", text: title }), " ", h("span", { class: "muted", text: values.length ? `max ${fmtFigure(field, max)}` : "" })),
      h("strong", { text: fmtFigure(field, last) }),
    ),
    svg,
  );
}

function healthStrip(samples, t0, t1) {
  const svg = s("svg", {
    viewBox: `0 0 ${W} 14`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": `Health over time: ${summarise(samples)}`,
    class: "strip",
  });
  const x = (t) => ((t - t0) / (t1 - t0)) * W;
  samples.forEach((p, i) => {
    const next = i + 1 < samples.length ? samples[i + 1].at : t1 + (t1 - t0) / Math.max(samples.length, 1);
    const x0 = x(p.at);
    svg.append(s("rect", { class: `health-${p.health || "unknown"}`, x: x0.toFixed(1), y: 0, width: Math.max(1, x(next) - x0).toFixed(1), height: 14 }));
  });
  return h(
    "figure",
    { class: "chart health" },
    h("figcaption", {}, h("span", { text: "Health" }), h("strong", { text: samples[samples.length - 1].health || "unknown" })),
    svg,
  );
}

function summarise(samples) {
  const counts = {};
  for (const p of samples) counts[p.health || "unknown"] = (counts[p.health || "unknown"] || 0) + 1;
  return Object.entries(counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(", ");
}
