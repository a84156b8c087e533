// The dashboard: the catalogue, one model at a time (versions side by side, charts, drift,
// a live tail of its predictions). Each panel asks for what it needs and says so when the
// server lacks it ("not available on this server") or the key lacks the scope.

import { AuthenticationNeeded, apiKey, forbidden, graphql, unavailable } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { subscribe } from "./live.js";
import * as Q from "./queries.js";

const $ = (selector) => document.querySelector(selector);
const TAIL_ROWS = 50;
let current = { name: null, stops: [] };

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const number = (value, digits = 3) => (value === null || value === undefined ? "—" : Number(value).toFixed(digits));
const time = (iso) => new Date(iso).toLocaleString();
const count = (value) => Number(value).toLocaleString("en");
const percent = (share) => `${Math.round(share * 100)}%`;
const signed = (value, digits = 3) => `${value < 0 ? "\u2212" : ""}${Math.abs(value).toFixed(digits)}`;

function panel(id, title, { wide = false } = {}) {
  const body = element("div", { class: "panel-body", id: `${id}-body` });
  const section = element(
    "section",
    { class: `panel${wide ? " wide" : ""}`, id, "aria-labelledby": `${id}-title`, "aria-busy": "true" },
    element("h2", { id: `${id}-title`, text: title }),
    body,
  );
  $("#model").append(section);
  return body;
}

function note(body, text, kind = "note") {
  body.replaceChildren(element("p", { class: kind, text }));
  body.closest("section")?.setAttribute("aria-busy", "false");
}

function done(body) {
  body.closest("section")?.setAttribute("aria-busy", "false");
}

/** Run a panel's query; null (with the panel's note written) when it cannot be shown. */
async function load(body, query, variables) {
  try {
    const { data, errors } = await graphql(query, variables);
    if (unavailable(errors)) {
      note(body, "Not available on this server (its schema lacks this panel's fields).", "unavailable");
      return null;
    }
    const scope = forbidden(errors);
    if (scope && !data) {
      note(body, `FORBIDDEN: your API key lacks the \`${scope}\` scope this panel needs.`, "forbidden");
      return null;
    }
    if (errors.length && !data) {
      note(body, `Error: ${errors[0].message}`, "error");
      return null;
    }
    return { data, scope };
  } catch (error) {
    if (error instanceof AuthenticationNeeded) askForKey(error.message);
    note(body, error instanceof AuthenticationNeeded ? "Waiting for an API key." : `Error: ${error.message}`, "error");
    return null;
  }
}

// --- the catalogue ---------------------------------------------------------------------

async function showCatalogue() {
  const status = $("#catalogue-status");
  const list = $("#models");
  try {
    const { data, errors } = await graphql(Q.CATALOGUE);
    const scope = forbidden(errors);
    if (scope) {
      status.textContent = `FORBIDDEN: your API key lacks the \`${scope}\` scope to read the catalogue.`;
      status.className = "forbidden";
      return;
    }
    const models = data?.models.nodes ?? [];
    status.textContent = `${models.length} models`;
    status.className = "note";
    list.replaceChildren(
      ...models.map((model) =>
        element(
          "li",
          {},
          element(
            "a",
            { href: `#model=${encodeURIComponent(model.name)}`, "data-model": model.name },
            element("span", { class: "name", text: model.name }),
            element("span", {
              class: "meta",
              text: `${model.task.toLowerCase()} · v${model.defaultVersion?.number ?? "—"} · ${model.versions.nodes.length} version(s)`,
            }),
          ),
        ),
      ),
    );
    if (!current.name && models.length) {
      const richest = [...models].sort((a, b) => b.versions.nodes.length - a.versions.nodes.length)[0];
      openWithoutFocus(richest.name);
    }
    markSelected();
  } catch (error) {
    if (error instanceof AuthenticationNeeded) askForKey(error.message);
    status.textContent = error instanceof AuthenticationNeeded ? "An API key is needed." : `Error: ${error.message}`;
    status.className = "error";
  }
}

function markSelected() {
  for (const link of document.querySelectorAll("#models a")) {
    if (link.dataset.model === current.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// --- one model -------------------------------------------------------------------------

async function showModel(name) {
  for (const stop of current.stops) stop();
  current = { name, stops: [] };
  markSelected();
  const main = $("#model");
  main.replaceChildren(element("h2", { class: "model-title", id: "model-title", text: name }));
  const header = element("p", { class: "note", id: "model-summary", text: "Loading…" });
  main.append(header);
  const versions = panel("versions", "Versions side by side", { wide: true });
  const shadow = panel("shadow", "Shadow versions");
  const comparison = panel("shadow-comparison", "Shadow comparison");
  const metrics = panel("metrics", "TEST metrics by version");
  const labels = panel("labels", "Predicted labels");
  const volume = panel("volume", "Volume over time");
  const latency = panel("latency", "Latency over time");
  const accuracy = panel("accuracy", "Accuracy over time");
  const drift = panel("drift", "Input drift (default version)", { wide: true });
  const history = panel("history", "Alias history");
  const tail = panel("tail", "Live tail", { wide: true });
  showTail(tail, name);
  const core = await load(versions, Q.MODEL, { name });
  if (!core || current.name !== name) return;
  const model = core.data.model;
  if (!model) {
    note(versions, `No model is named ${name}.`, "error");
    return;
  }
  header.textContent = `${model.task.toLowerCase()}${model.description ? ` — ${model.description}` : ""}${model.tags.length ? ` · tags: ${model.tags.join(", ")}` : ""}`;
  await Promise.all([
    showVersions(versions, model),
    showShadow(shadow, comparison, name),
    showMetricsChart(metrics, model),
    showHistory(history, model),
    showLabels(labels, name),
    showSeries({ volume, latency, accuracy }, name),
    showDrift(drift, name),
  ]);
}

function metricNames(versions, key) {
  return [...new Set(versions.flatMap((version) => (version[key] ?? []).flatMap((slice) => slice.metrics.map((metric) => metric.name))))].sort();
}

function metricOf(version, key, name) {
  return version[key]?.[0]?.metrics.find((metric) => metric.name === name)?.value ?? null;
}

async function showVersions(body, model) {
  const versions = [...model.versions.nodes].reverse();
  const [live, split, estimated] = await Promise.all([
    graphql(Q.LIVE_METRICS, { name: model.name }).catch(() => null),
    graphql(Q.TRAFFIC_SPLIT, { name: model.name }).catch(() => null),
    graphql(Q.ESTIMATED_METRICS, { name: model.name }).catch(() => null),
  ]);
  const liveNote = liveAvailability(live);
  if (!liveNote) {
    for (const version of versions) {
      version.live = live.data.model.versions.nodes.find((node) => node.number === version.number)?.performance ?? [];
    }
  }
  const estimatedNote = liveAvailability(estimated);
  if (!estimatedNote) {
    for (const version of versions) {
      const report = estimated.data.model.versions.nodes.find((node) => node.number === version.number)?.estimatedPerformance;
      version.estimatedReport = report ?? null;
      version.estimated = report?.overall ? [{ metrics: report.overall.estimated }] : [];
    }
  }
  const splitNote = liveAvailability(split);
  const weights = new Map((splitNote ? [] : split.data.model.trafficSplit).map((share) => [share.version.number, share.weight]));
  const table = element("table", { class: "versions" });
  table.append(element("caption", { class: "visually-hidden", text: `Versions of ${model.name}` }));
  const head = element("tr", {}, element("th", { scope: "col", text: "" }));
  for (const version of versions) head.append(element("th", { scope: "col", text: `v${version.number}` }));
  table.append(element("thead", {}, head));
  const rows = element("tbody");
  const row = (label, cells, className = "") => {
    const tr = element("tr", { class: className }, element("th", { scope: "row", text: label }));
    for (const cell of cells) tr.append(element("td", { text: cell }));
    rows.append(tr);
  };
  row("Aliases", versions.map((version) => version.aliases.join(", ") || "—"));
  row("Algorithm", versions.map((version) => version.algorithm.split(".").at(-1)));
  row("Registered", versions.map((version) => new Date(version.createdAt).toLocaleDateString()));
  row("Traffic share", versions.map((version) => (splitNote ? splitNote : weights.has(version.number) ? `${(weights.get(version.number) * 100).toFixed(0)} %` : "—")));
  for (const name of metricNames(versions, "performance")) {
    row(`TEST ${name}`, versions.map((version) => number(metricOf(version, "performance", name))), "metric");
  }
  if (liveNote) row("LIVE metrics", versions.map(() => liveNote), "metric");
  else {
    row("LIVE samples", versions.map((version) => String(version.live?.[0]?.numSamples ?? 0)), "metric");
    for (const name of metricNames(versions, "live")) {
      row(`LIVE ${name}`, versions.map((version) => number(metricOf(version, "live", name))), "metric");
    }
  }
  const classifier = versions.some((version) => version.estimatedReport?.unavailableReason !== "NOT_A_CLASSIFIER");
  if (estimatedNote) row("ESTIMATED metrics", versions.map(() => estimatedNote), "metric");
  else if (classifier) {
    row("ESTIMATED samples", versions.map((version) => estimatedSamples(version.estimatedReport)), "metric");
    for (const name of metricNames(versions, "estimated")) {
      row(`ESTIMATED ${name}`, versions.map((version) => number(metricOf(version, "estimated", name))), "metric");
    }
  }
  table.append(rows);
  body.replaceChildren(element("div", { class: "scroll" }, table));
  done(body);
}

function estimatedSamples(report) {
  if (!report) return "—";
  if (!report.available) return report.unavailableReason === "TOO_FEW_REFERENCE_ROWS" ? "too few labelled to calibrate" : "—";
  return String(report.sampleSize);
}

function liveAvailability(answer) {
  if (!answer) return "error";
  if (unavailable(answer.errors)) return "not available on this server";
  if (forbidden(answer.errors)) return "FORBIDDEN";
  return answer.data?.model ? null : "—";
}

function showMetricsChart(body, model) {
  const versions = [...model.versions.nodes].reverse();
  const shares = metricNames(versions, "performance").filter((name) =>
    versions.every((version) => {
      const value = metricOf(version, "performance", name);
      return value === null || (value >= 0 && value <= 1);
    }),
  );
  if (!shares.length) return note(body, "No TEST metrics between 0 and 1 were registered.");
  const groups = shares.slice(0, 6).map((name) => ({
    label: name,
    values: versions.map((version) => metricOf(version, "performance", name) ?? 0),
  }));
  body.replaceChildren(barChart("TEST metrics, overall", versions.map((version) => `v${version.number}`), groups, { max: 1 }));
  done(body);
}

async function showHistory(body, model) {
  const moves = model.aliasHistory;
  if (!moves.length) return note(body, "No alias has moved.");
  const basis = await graphql(Q.ALIAS_BASIS, { name: model.name }).catch(() => null);
  const basedOn = new Map((basis?.data?.model?.aliasHistory ?? []).map((move) => [`${move.alias}@${move.changedAt}`, move.basedOn]));
  const list = element("ol", { class: "history" });
  for (const move of moves) {
    const summary = basedOn.get(`${move.alias}@${move.changedAt}`);
    list.append(
      element(
        "li",
        {},
        element("time", { datetime: move.changedAt, text: time(move.changedAt) }),
        ` ${move.alias}: ${move.fromVersion ? `v${move.fromVersion.number}` : "none"} → ${move.toVersion ? `v${move.toVersion.number}` : "none"}${move.changedBy ? ` by ${move.changedBy}` : ""}`,
        summary ? element("p", { class: "note based-on", text: `Based on a ${summary.source} comparison: ${comparisonSentence(summary.candidate, summary.baseline, summary)}` }) : null,
      ),
    );
  }
  body.replaceChildren(list);
  done(body);
}

// --- shadow versions -------------------------------------------------------------------

/** The shadow versions and their sample, then each one's comparison with what was served. */
async function showShadow(body, comparisonBody, name) {
  const answer = await load(body, Q.SHADOW, { name });
  if (!answer) return note(comparisonBody, body.textContent, body.firstChild?.className);
  const model = answer.data.model;
  const shadows = model?.shadowVersions ?? [];
  const last = model?.shadowHistory[0];
  const changed = last ? ` Last changed ${time(last.changedAt)}${last.changedBy ? ` by ${last.changedBy}` : ""}.` : "";
  if (!shadows.length) {
    note(body, `No version runs in the shadow.${changed}`);
    return note(comparisonBody, "No shadow version to compare.");
  }
  const names = shadows.map((version) => `v${version.number}`).join(", ");
  body.replaceChildren(
    element("p", { id: "shadow-summary", text: `${names} ${shadows.length > 1 ? "score" : "scores"} ${percent(model.shadowSample)} of live requests in the shadow, after each answer is sent.${changed}` }),
  );
  done(body);
  const sections = await Promise.all(shadows.map((version) => shadowComparison(version.number, name)));
  if (current.name !== name) return;
  comparisonBody.replaceChildren(...sections);
  done(comparisonBody);
}

async function shadowComparison(version, name) {
  const section = element("div", { class: "shadow-version", "data-version": String(version) });
  const answer = await load(section, Q.SHADOW_COMPARISON, { name, version });
  if (!answer) return section;
  const comparison = answer.data.compareVersions;
  section.replaceChildren(element("p", { class: "sentence", text: comparisonSentence(version, null, comparison) }));
  if (comparison.labelChanges.length) {
    const table = element("table", { class: "label-changes" });
    table.append(element("caption", { class: "visually-hidden", text: `Label changes of v${version} against what was served` }));
    const head = element("tr");
    for (const title of ["Served", `v${version}`, "Requests"]) head.append(element("th", { scope: "col", text: title }));
    const rows = element("tbody");
    for (const change of comparison.labelChanges.slice(0, 5)) {
      rows.append(element("tr", {}, element("td", { text: change.from }), element("td", { text: change.to }), element("td", { text: count(change.count) })));
    }
    table.append(element("thead", {}, head), rows);
    section.append(element("div", { class: "scroll" }, table));
  }
  return section;
}

/** A comparison (or the summary an alias move kept of one) in plain words. */
function comparisonSentence(candidate, baseline, comparison) {
  const against = baseline === null || baseline === undefined ? "the answers served" : `v${baseline}`;
  const refused = comparison.skipped ? ` (${count(comparison.skipped)} refused)` : "";
  if (!comparison.compared) return `v${candidate} has not answered any request yet${refused}.`;
  const requests = `${count(comparison.compared)} requests${refused}`;
  const agreement =
    comparison.agreement !== null && comparison.agreement !== undefined
      ? `v${candidate} agrees with ${against} on ${percent(comparison.agreement)} of ${requests}`
      : `v${candidate}'s values differ from ${against} by ${number(comparison.meanAbsoluteDifference)} on average over ${requests}`;
  const paired = comparison.paired;
  if (!paired) return `${agreement}; none of them is labelled yet.`;
  const metric = paired.metric === "mae" ? "mean absolute error" : paired.metric;
  const direction = paired.difference > 0 ? "higher" : paired.difference < 0 ? "lower" : "no different";
  const size = paired.difference === 0 ? "" : `${number(Math.abs(paired.difference))} `;
  const level = `${Math.round(paired.confidenceLevel * 100)}%`;
  let test = "too few for a test";
  if (paired.pValue !== null) {
    const significant = paired.pValue < 1 - paired.confidenceLevel ? "significant" : "not significant";
    const interval = paired.confidenceLow === null ? "" : `${level} CI ${signed(paired.confidenceLow)} to ${signed(paired.confidenceHigh)}, `;
    const p = paired.pValue < 0.001 ? "p < 0.001" : `p = ${number(paired.pValue)}`;
    test = `${interval}${p}, ${significant}`;
  }
  return `${agreement}; on ${count(paired.pairs)} labelled ones its ${metric} is ${size}${direction} (${number(paired.candidate)} against ${number(paired.baseline)}; ${test}).`;
}

async function showLabels(body, name) {
  const answer = await load(body, Q.LABELS, { filter: { model: name } });
  if (!answer) return;
  const stats = answer.data.predictionStats;
  const summary = element("p", { class: "note", text: `${stats.count} predictions · mean latency ${number(stats.meanLatencyMs, 2)} ms · p95 ${number(stats.p95LatencyMs, 2)} ms` });
  if (!stats.labelCounts.length) {
    const why = stats.count ? "A regression model predicts values, not labels." : "No predictions yet.";
    body.replaceChildren(summary, element("p", { class: "note", text: why }));
  } else {
    const groups = stats.labelCounts.map((row) => ({ label: row.label, values: [row.count] }));
    body.replaceChildren(summary, barChart("Predictions per label", ["count"], groups));
  }
  done(body);
}

const INTERVALS = { MINUTE: 3600e3, HOUR: 48 * 3600e3, DAY: 60 * 86400e3 };

async function showSeries(bodies, name, interval = "MINUTE") {
  const since = new Date(Date.now() - INTERVALS[interval]).toISOString();
  const answer = await load(bodies.volume, Q.SERIES, { filter: { model: name, createdAfter: since }, interval });
  if (!answer) {
    const why = bodies.volume.textContent;
    for (const body of [bodies.latency, bodies.accuracy]) note(body, why, bodies.volume.firstChild?.className);
    return;
  }
  const groups = answer.data.predictionStats.groups.filter((group) => group.bucket);
  const picker = element("select", { id: "interval", "aria-label": "Time bucket" });
  for (const option of Object.keys(INTERVALS)) picker.append(element("option", { value: option, text: `per ${option.toLowerCase()}` }));
  picker.value = interval;
  picker.addEventListener("change", () => showSeries(bodies, name, picker.value));
  const points = (key) => groups.filter((group) => group[key] !== null).map((group) => [new Date(group.bucket), group[key]]);
  const draw = (body, chart, empty) => {
    body.replaceChildren(chart ?? element("p", { class: "note", text: empty }));
    done(body);
  };
  const label = element("label", { for: "interval", text: "Bucket " });
  bodies.volume.replaceChildren(element("div", { class: "controls" }, label, picker));
  bodies.volume.append(groups.length ? lineChart("Predictions", [{ name: "count", points: points("count") }]) : element("p", { class: "note", text: "No predictions in this window." }));
  done(bodies.volume);
  draw(bodies.latency, groups.length ? lineChart("Latency (ms)", [{ name: "mean", points: points("meanLatencyMs") }, { name: "p95", points: points("p95LatencyMs") }], " ms") : null, "No predictions in this window.");
  const accuracy = points("accuracy");
  draw(bodies.accuracy, accuracy.length ? lineChart("Accuracy of labelled predictions", [{ name: "accuracy", points: accuracy }]) : null, "No recorded outcomes in this window.");
  await showEstimatedAccuracy(bodies.accuracy, name, since, interval);
}

/** The default version's estimated accuracy (CBPE) per bucket beside its realised one, under
 * the accuracy chart; nothing when the server, the model or the labels cannot give one. */
async function showEstimatedAccuracy(body, name, since, interval) {
  const answer = await graphql(Q.ESTIMATED_SERIES, { name, since, interval }).catch(() => null);
  const version = answer?.data?.model?.defaultVersion;
  const report = version?.estimatedPerformance;
  if (!report?.available) return;
  const series = (key) =>
    report.periods
      .map((period) => [new Date(period.bucket), period[key].find((metric) => metric.name === "accuracy")?.value ?? null])
      .filter(([, value]) => value !== null);
  const estimated = series("estimated");
  if (!estimated.length) return;
  const lines = [{ name: "estimated", points: estimated }];
  const realised = series("realised");
  if (realised.length) lines.push({ name: "realised", points: realised });
  body.append(lineChart(`Estimated accuracy of v${version.number} (before labels arrive)`, lines));
}

async function showDrift(body, name) {
  const answer = await load(body, Q.DRIFT, { name });
  if (!answer) return;
  const version = answer.data.model?.defaultVersion;
  const report = version?.inputDrift;
  if (!report) return note(body, "No default version.");
  if (!report.referenceAvailable) return note(body, `Version ${version.number} was registered without reference data.`);
  const charts = [...report.features, report.prediction].filter(Boolean).map((feature) => {
    const title = `${feature.feature} (${feature.method}${feature.score === null ? ", too few samples" : ` ${number(feature.score)}`}${feature.drifted ? ", DRIFTED" : ""})`;
    const groups = feature.bins.map((bin) => ({ label: bin.label, values: [bin.reference, bin.live] }));
    const chart = barChart(title, ["training", "live"], groups, { max: Math.max(0.01, ...groups.flatMap((group) => group.values)) });
    if (feature.drifted) chart.classList.add("drifted");
    return chart;
  });
  body.replaceChildren(element("p", { class: "note", text: `v${version.number}, ${report.sampleSize} live predictions compared.` }), element("div", { class: "chart-grid" }, ...charts));
  done(body);
}

// --- the live tail ---------------------------------------------------------------------

function tailRow(prediction, fresh) {
  const output = prediction.label ?? number(prediction.value);
  return element(
    "tr",
    { class: fresh ? "fresh" : "", "data-id": prediction.id },
    element("td", {}, element("time", { datetime: prediction.createdAt, text: new Date(prediction.createdAt).toLocaleTimeString() })),
    element("td", { text: prediction.modelVersion ? `v${prediction.modelVersion.number}` : "—" }),
    element("td", { text: output }),
    element("td", { text: number(prediction.confidence) }),
    element("td", { text: number(prediction.latencyMs, 2) }),
    element("td", { text: prediction.caller ?? "—" }),
    element("td", { class: "mono", text: prediction.requestId }),
    element("td", { class: "shadows", text: shadowOutputs(prediction.shadows) }),
  );
}

// What the shadow versions answered to one prediction ("v2: low"), "—" while none has.
function shadowOutputs(shadows) {
  if (!shadows || shadows.length === 0) return "—";
  return shadows
    .map((shadow) => `v${shadow.modelVersion.number}: ${shadow.refusal ? "refused" : (shadow.label ?? number(shadow.value))}`)
    .join(", ");
}

async function showTail(body, name) {
  const filter = { model: name };
  const answer = await load(body, Q.TAIL, { filter });
  if (!answer || current.name !== name) return;
  const status = element("p", { class: "note", id: "tail-status", role: "status", text: "connecting…" });
  const table = element("table", { class: "tail" });
  table.append(element("caption", { class: "visually-hidden", text: `Latest predictions of ${name}, newest first` }));
  const head = element("tr");
  for (const title of ["Time", "Version", "Output", "Confidence", "Latency ms", "Caller", "Request id", "Shadows"]) head.append(element("th", { scope: "col", text: title }));
  const rows = element("tbody", { id: "tail-rows" });
  rows.append(...answer.data.predictions.nodes.map((prediction) => tailRow(prediction, false)));
  table.append(element("thead", {}, head), rows);
  body.replaceChildren(status, element("div", { class: "scroll" }, table));
  done(body);
  let received = 0;
  const stop = subscribe(Q.TAIL_SUBSCRIPTION, { filter }, {
    onData: (data) => {
      // A prediction already shown comes again once its shadows answered: its row is updated.
      const fresh = [];
      for (const prediction of data.predictionsCreated) {
        const shown = rows.querySelector(`tr[data-id="${CSS.escape(prediction.id)}"]`);
        if (shown) shown.replaceWith(tailRow(prediction, shown.classList.contains("fresh")));
        else fresh.push(prediction);
      }
      received += fresh.length;
      rows.prepend(...fresh.map((prediction) => tailRow(prediction, true)).reverse());
      while (rows.children.length > TAIL_ROWS) rows.lastElementChild.remove();
      status.textContent = `live · ${received} new since opened`;
    },
    onState: (text, kind) => {
      status.textContent = text === "live" ? `live · ${received} new since opened` : text;
      status.dataset.state = kind;
    },
    onError: (errors) => {
      const scope = forbidden(errors);
      status.textContent = scope ? `FORBIDDEN: the live tail needs the \`${scope}\` scope.` : `Error: ${errors[0]?.message}`;
      status.dataset.state = "error";
    },
  });
  current.stops.push(stop);
}

// --- the key, the route, catalogue events -----------------------------------------------

function askForKey(message) {
  const dialog = $("#key-dialog");
  if (dialog.open) return;
  $("#key-error").textContent = apiKey.get() ? `The server refused the key: ${message ?? "unknown or revoked"}` : "";
  dialog.showModal();
  $("#key-input").focus();
}

function showAuthState() {
  const key = apiKey.get();
  $("#auth-state").textContent = key ? `Key ${key.slice(0, 16)}… (this tab only)` : "";
  $("#change-key").hidden = !key;
}

/** Opens the model chosen for the visitor: no history entry, and focus stays where it is. */
function openWithoutFocus(name) {
  history.replaceState(null, "", `#model=${encodeURIComponent(name)}`);
  showModel(name);
}

function fromHash() {
  const match = window.location.hash.match(/^#model=(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

let catalogueStop = null;

function followCatalogue() {
  catalogueStop?.();
  catalogueStop = subscribe(Q.CATALOGUE_SUBSCRIPTION, {}, {
    onData: (data) => {
      showCatalogue();
      if (data.catalogueEvents.model.name === current.name) showModel(current.name);
    },
    onState: () => {},
    onError: () => {},
  });
}

function start() {
  $("#key-form").addEventListener("submit", (event) => {
    const key = $("#key-input").value.trim();
    if (!key) return event.preventDefault();
    apiKey.set(key);
    $("#key-input").value = "";
    showAuthState();
    boot();
  });
  $("#change-key").addEventListener("click", () => {
    apiKey.clear();
    showAuthState();
    askForKey();
  });
  window.addEventListener("hashchange", () => {
    const name = fromHash();
    if (name) {
      showModel(name);
      $("#model").focus();
    }
  });
  showAuthState();
  boot();
}

function boot() {
  const name = fromHash();
  if (name) showModel(name);
  showCatalogue();
  followCatalogue();
}

start();
