// Small SVG charts: a time series and grouped bars. Each is a <figure> whose SVG has a text
// alternative (role="img", aria-label) and a caption; colours come from CSS classes.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 480;
const HEIGHT = 180;
const PAD = { top: 22, right: 12, bottom: 28, left: 52 };

function svgElement(name, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== null) element.textContent = text;
  return element;
}

function figure(title, svg, summary) {
  const wrapper = document.createElement("figure");
  wrapper.className = "chart";
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: ${summary}`);
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  wrapper.append(caption, svg);
  return wrapper;
}

const formatNumber = (value) =>
  Number.isInteger(value) || Math.abs(value) >= 100
    ? value.toFixed(0)
    : Math.abs(value) >= 1
      ? value.toFixed(2)
      : value.toFixed(3);

function legend(svg, names) {
  names.forEach((name, index) => {
    const x = WIDTH - PAD.right - (names.length - index) * 80;
    svg.append(svgElement("rect", { x, y: 2, width: 10, height: 8, class: `series-${index}` }));
    svg.append(svgElement("text", { x: x + 14, y: 10, class: "legend" }, name));
  });
}

/** A line per series over time; `series` is [{name, points: [[Date, number]]}]. */
export function lineChart(title, series, unit = "") {
  const svg = svgElement("svg", { class: "line-chart" });
  const points = series.flatMap((one) => one.points);
  const times = points.map(([time]) => time.getTime());
  const values = points.map(([, value]) => value);
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  const [v0, v1] = [Math.min(0, ...values), Math.max(...values, 1e-9)];
  const x = (time) =>
    PAD.left + (t1 === t0 ? 0.5 : (time.getTime() - t0) / (t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (value) => HEIGHT - PAD.bottom - ((value - v0) / (v1 - v0)) * (HEIGHT - PAD.top - PAD.bottom);
  svg.append(svgElement("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v0), y2: y(v0), class: "axis" }));
  svg.append(svgElement("text", { x: PAD.left - 6, y: y(v1) + 4, class: "tick end" }, `${formatNumber(v1)}${unit}`));
  svg.append(svgElement("text", { x: PAD.left - 6, y: y(v0), class: "tick end" }, `${formatNumber(v0)}${unit}`));
  const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  svg.append(svgElement("text", { x: PAD.left, y: HEIGHT - PAD.bottom + 14, class: "tick" }, time(t0)));
  svg.append(svgElement("text", { x: WIDTH - PAD.right, y: HEIGHT - PAD.bottom + 14, class: "tick end" }, time(t1)));
  series.forEach((one, index) => {
    const path = one.points.map(([when, value]) => `${x(when).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
    svg.append(svgElement("polyline", { points: path, class: `series-${index} line` }));
    for (const [when, value] of one.points) {
      const dot = svgElement("circle", { cx: x(when), cy: y(value), r: 2.5, class: `series-${index} dot` });
      dot.append(svgElement("title", {}, `${one.name} ${when.toLocaleString()}: ${formatNumber(value)}${unit}`));
      svg.append(dot);
    }
  });
  if (series.length > 1) legend(svg, series.map((one) => one.name));
  const latest = series.map((one) => `${one.name} latest ${formatNumber(one.points.at(-1)?.[1] ?? 0)}${unit}`);
  return figure(title, svg, `${points.length} points; ${latest.join(", ")}`);
}

/** Grouped bars; `groups` is [{label, values: [number]}], one value per name in `names`. */
export function barChart(title, names, groups, { max = null, unit = "" } = {}) {
  const svg = svgElement("svg", { class: "bar-chart" });
  const top = max ?? Math.max(1e-9, ...groups.flatMap((group) => group.values));
  const slot = (WIDTH - PAD.left - PAD.right) / Math.max(1, groups.length);
  const bar = Math.min(28, (slot * 0.8) / names.length);
  const y = (value) => HEIGHT - PAD.bottom - (value / top) * (HEIGHT - PAD.top - PAD.bottom);
  svg.append(svgElement("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: "axis" }));
  svg.append(svgElement("text", { x: PAD.left - 6, y: y(top) + 4, class: "tick end" }, `${formatNumber(top)}${unit}`));
  svg.append(svgElement("text", { x: PAD.left - 6, y: y(0), class: "tick end" }, `0${unit}`));
  groups.forEach((group, index) => {
    const start = PAD.left + index * slot + (slot - bar * names.length) / 2;
    group.values.forEach((value, series) => {
      const rect = svgElement("rect", {
        x: start + series * bar,
        y: y(value),
        width: Math.max(1, bar - 2),
        height: Math.max(0, y(0) - y(value)),
        class: `series-${series} bar`,
      });
      rect.append(svgElement("title", {}, `${group.label} ${names[series]}: ${formatNumber(value)}${unit}`));
      svg.append(rect);
    });
    const room = Math.max(4, Math.floor(slot / 7));
    const label = group.label.length > room ? `${group.label.slice(0, room - 1)}…` : group.label;
    svg.append(svgElement("text", { x: start + (bar * names.length) / 2, y: HEIGHT - PAD.bottom + 14, class: "tick middle" }, label));
  });
  if (names.length > 1) legend(svg, names);
  const summary = groups.map((group) => `${group.label} ${group.values.map(formatNumber).join("/")}`).join("; ");
  return figure(title, svg, summary);
}
