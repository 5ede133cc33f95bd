// Small inline-SVG time-series charts for a link's QoS history (no library).

import { clock, fmtFigure, h, isNum, s } from "./util.js";

const W = 300;
const H = 64;
const PAD = 2;

const SERIES = [
  { field: "rtt_ms", label: "RTT", cls: "rtt" },
  { field: "jitter_ms", label: "Jitter", cls: "jitter" },
  { field: "loss_pct", label: "Loss", cls: "loss" },
  { field: "bitrate_kbps", label: "Bitrate", cls: "bitrate" },
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

function lineChart(samples, { field, label, cls }, t0, t1) {
  const points = samples.filter((p) => isNum(p[field])).map((p) => [p.at, p[field]]);
  const values = points.map((p) => p[1]);
  const last = values.length ? values[values.length - 1] : null;
  const max = values.length ? Math.max(...values) : 0;
  const min = values.length ? Math.min(...values) : 0;
  const top = max > 0 ? max * 1.1 : 1;
  const x = (t) => PAD + ((t - t0) / (t1 - t0)) * (W - 2 * PAD);
  const y = (v) => H - PAD - (v / top) * (H - 2 * PAD);
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": values.length
      ? `${label} from ${clock(t0)} to ${clock(t1)}: min ${fmtFigure(field, min)}, max ${fmtFigure(field, max)}, latest ${fmtFigure(field, last)}`
      : `${label}: not measured yet`,
    dataset: { field },
  });
  svg.append(s("line", { class: "axis", x1: 0, y1: H - PAD, x2: W, y2: H - PAD }));
  if (points.length) {
    const line = points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const first = points[0];
    const lastPt = points[points.length - 1];
    svg.append(
      s("polygon", {
        class: "area",
        points: `${x(first[0]).toFixed(1)},${H - PAD} ${line} ${x(lastPt[0]).toFixed(1)},${H - PAD}`,
      }),
      s("polyline", { class: "line", points: line, "vector-effect": "non-scaling-stroke" }),
    );
  }
  return h(
    "figure",
    { class: `chart ${cls}` },
    h(
      "figcaption",
      {},
      h("span", {}, label, " ", h("span", { class: "muted", text: values.length ? `max ${fmtFigure(field, max)}` : "" })),
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
