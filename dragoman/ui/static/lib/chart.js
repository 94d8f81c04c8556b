// Charts with uPlot (vendor/uPlot.esm.js, MIT), each with its numbers one click away.
import uPlot from "../vendor/uPlot.esm.js";
import { h, table } from "./dom.js";

const COLORS = ["#2f5d8a", "#b3261e", "#2c7a3f", "#9a6700", "#6b4c9a"];

function numbersToggle(box, rowsTable) {
  const numbers = h("div", { class: "chart-numbers", hidden: true }, rowsTable);
  const button = h("button", { type: "button", class: "link numbers-toggle" }, "Show numbers");
  button.addEventListener("click", () => {
    numbers.hidden = !numbers.hidden;
    button.textContent = numbers.hidden ? "Show numbers" : "Hide numbers";
  });
  box.append(button, numbers);
}

function width(el) { return Math.max(280, (el.clientWidth || el.parentElement.clientWidth || 600) - 8); }

// A time series: xs are epoch seconds; series is [{label, values, format}].
export function timeChart(id, xs, series, { height = 200, fmtTime } = {}) {
  const plot = h("div", { class: "chart" });
  const box = h("div", { id, class: "chart-box" }, plot);
  const opts = {
    width: 600, height,
    series: [{ label: "time (UTC)" }, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
      value: (u, v) => (v === null || v === undefined ? "—" : s.format ? s.format(v) : v) }))],
    axes: [{ label: "UTC" }, { size: 60 }],
    scales: { x: { time: true } },
    // UTC, as the numbers table, the feed and every list: uPlot would otherwise show the browser's local time.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
  };
  requestAnimationFrame(() => {
    const u = new uPlot(opts, [xs, ...series.map((s) => s.values)], plot);
    u.setSize({ width: width(box), height });
  });
  const rows = xs.map((x, i) => Object.fromEntries([["time", x], ...series.map((s) => [s.label, s.values[i]])]));
  numbersToggle(box, table(rows, [["time", "bucket (UTC)", null, (v) => fmtTime(v)],
    ...series.map((s) => [s.label, s.label, "num", (v) => (v === null || v === undefined ? "—" : s.format ? s.format(v) : String(v))])],
    { id: id + "-numbers" }));
  return box;
}

// Bars by category: labels on the x axis, one value each.
export function barChart(id, labels, values, { label, format, height = 220 }) {
  const plot = h("div", { class: "chart" });
  const box = h("div", { id, class: "chart-box" }, plot);
  const xs = labels.map((_, i) => i);
  const opts = {
    width: 600, height,
    scales: { x: { time: false, range: [-0.5, Math.max(0.5, labels.length - 0.5)] } },
    series: [{ value: (u, i) => labels[i] ?? "" },
      { label, fill: "rgba(47,93,138,0.5)", stroke: COLORS[0], paths: uPlot.paths.bars({ size: [0.6, 80] }),
        points: { show: false }, value: (u, v) => (v === null || v === undefined ? "—" : format(v)) }],
    axes: [{ splits: () => xs, values: (u, splits) => splits.map((i) => short(labels[i])), rotate: 0 }, { size: 70 }],
    legend: { show: true },
  };
  requestAnimationFrame(() => {
    const u = new uPlot(opts, [xs, values], plot);
    u.setSize({ width: width(box), height });
  });
  const rows = labels.map((l, i) => ({ group: l, value: values[i] }));
  // The numbers as the API gave them (not rounded for display), so they can be checked against `dragoman costs`.
  numbersToggle(box, table(rows, [["group", "group"], ["value", label, "num", (v) => (v === null || v === undefined ? "—" : String(v))]], { id: id + "-numbers" }));
  return box;
}

function short(text) {
  const s = text === null || text === undefined ? "(none)" : String(text);
  return s.length > 14 ? s.slice(0, 13) + "…" : s;
}
