// salescalls report: draws the embedded charts, the filtered funnel, and makes transcripts seek audio.
"use strict";

// The toolbar shows only while the pointer is over a chart, not over every chart of a page.
const PLOT_CONFIG = {
  displaylogo: false,
  displayModeBar: "hover",
  responsive: true,
  modeBarButtonsToRemove: ["select2d", "lasso2d"],
};

function drawChart(element, figure) {
  Plotly.react(element, figure.data, figure.layout, PLOT_CONFIG);
}

function drawEmbeddedCharts() {
  document.querySelectorAll(".chart[data-figure]").forEach((element) => {
    const source = document.getElementById(element.dataset.figure);
    if (source) drawChart(element, JSON.parse(source.textContent));
  });
}

// ---- the page's language: report.js's own sentences, translated into the page by the build
let UI_STRINGS = null;

function t(text, values = {}) {
  if (UI_STRINGS === null) {
    const source = document.getElementById("ui-strings");
    UI_STRINGS = source ? JSON.parse(source.textContent) : {};
  }
  return (UI_STRINGS[text] || text).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole));
}

function localePercent(value) {
  const lang = document.documentElement.lang || "en";
  if (lang === "en") return Math.round(value * 100) + "%";
  return new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0 }).format(value);
}

// ---- funnel page
function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function percent(value) {
  return value === null || value === undefined ? "–" : localePercent(value);
}

function funnelSection(view, root, filters) {
  const section = document.createElement("section");
  section.className = "funnel";
  const title = document.createElement("h2");
  title.textContent = t(view.calls === 1 ? "Script {script}: {calls} call" : "Script {script}: {calls} calls",
    { script: view.script, calls: view.calls });
  section.appendChild(title);
  const models = document.createElement("p");
  models.className = "muted";
  models.textContent = t("Stages labelled by {models}.", { models: view.stage_models });
  section.appendChild(models);
  const chart = document.createElement("div");
  chart.className = "chart";
  section.appendChild(chart);

  const table = document.createElement("table");
  table.className = "funnel-table";
  const head = table.createTHead().insertRow();
  ["stage", "got this far", "occurred", "dropped here", "drop-off", "{level} interval", "completed here", "dropped by customer",
    "outcomes of calls ended here"].map((heading) => t(heading, { level: localePercent(0.95) }))
    .forEach((name, i) => {
      const th = document.createElement("th");
      th.textContent = name;
      if (i > 0 && i < 8) th.className = "num";
      head.appendChild(th);
    });
  const body = table.createTBody();
  view.rows.forEach((stage) => {
    const row = body.insertRow();
    row.dataset.stage = stage.stage;
    if (stage.weak) row.className = "weak";
    const name = cell(row, "");
    if (stage.page) {
      const link = document.createElement("a");
      link.href = root + stage.page + (filters ? "#" + filters : "");
      link.textContent = stage.stage;
      link.title = t("calls that ended at this stage");
      name.appendChild(link);
    } else {
      name.textContent = stage.stage;
    }
    if (!stage.required) name.appendChild(Object.assign(document.createElement("small"), { textContent: t(" optional") }));
    cell(row, stage.got_here, "num got");
    cell(row, stage.occurred, "num occurred");
    cell(row, stage.dropped, "num dropped");
    cell(row, percent(stage.drop_share), "num");
    cell(row, stage.drop_low === null ? "" : `${percent(stage.drop_low)}–${percent(stage.drop_high)}`, "num");
    cell(row, stage.completed, "num completed");
    cell(row, stage.dropped_by_customer, "num");
    cell(row, stage.outcomes_of_ended);
  });
  section.appendChild(table);
  const weak = document.createElement("div");
  weak.className = "weakest";
  view.weakest_lines.forEach((line) => {
    weak.appendChild(Object.assign(document.createElement("p"), { textContent: line.trim() }));
  });
  section.appendChild(weak);
  return [section, chart];
}

function setUpFunnel() {
  const source = document.getElementById("funnel-data");
  const form = document.getElementById("funnel-filters");
  const target = document.getElementById("funnels");
  if (!source || !form || !target) return;
  const funnel = JSON.parse(source.textContent);
  const root = target.dataset.root || "";
  // A rep's funnel is over all segments and campaigns: choosing one clears the others.
  form.addEventListener("change", (event) => {
    if (event.target.name === "rep" && form.rep.value) {
      form.segment.value = "";
      form.campaign.value = "";
    } else if ((event.target.name === "segment" || event.target.name === "campaign") && event.target.value) {
      form.rep.value = "";
    }
  });
  const show = () => {
    const key = [form.period.value, form.segment.value, form.campaign.value, form.rep.value].join("|");
    const views = funnel.views[key] || [];
    target.replaceChildren();
    if (!views.length) {
      target.appendChild(Object.assign(document.createElement("p"), {
        className: "muted",
        textContent: t("No scored calls match these filters."),
      }));
    }
    const query = new URLSearchParams({
      period: form.period.value, segment: form.segment.value, campaign: form.campaign.value, rep: form.rep.value,
    });
    views.forEach((view) => {
      const [section, chart] = funnelSection(view, root, query.toString());
      target.appendChild(section);
      drawChart(chart, view.figure);
    });
    history.replaceState(null, "", "#" + query.toString());
  };
  const wanted = new URLSearchParams(location.hash.slice(1));
  form.reset(); // the address alone says which funnel to show, not what the browser restored
  ["period", "segment", "campaign", "rep"].forEach((name) => {
    const value = wanted.get(name);
    if (value !== null && [...form[name].options].some((o) => o.value === value)) form[name].value = value;
  });
  form.addEventListener("change", show);
  show();
}

// ---- stage pages follow the funnel's filters (period, segment, campaign, rep in the address)
function setUpStageFilters() {
  const calls = [...document.querySelectorAll("article.call[data-period]")];
  const note = document.querySelector("p.filtered");
  if (!calls.length || !note) return;
  const wanted = new URLSearchParams(location.hash.slice(1));
  const filters = ["period", "segment", "campaign", "rep"]
    .map((name) => [name, wanted.get(name) || ""])
    .filter(([name, value]) => value && !(name === "period" && value === "all"));
  if (!filters.length) return;
  let shown = 0;
  calls.forEach((call) => {
    const match = filters.every(([name, value]) => call.dataset[name] === value);
    call.hidden = !match;
    shown += match;
  });
  note.hidden = false;
  note.textContent = t("{shown} of the {total} calls below match the funnel's filters ({filters}). ", {
    shown, total: calls.length, filters: filters.map(([name, value]) => `${t(name)} ${value}`).join(", "),
  });
  const all = Object.assign(document.createElement("a"), { href: "#", textContent: t("Show all") });
  all.addEventListener("click", (event) => {
    event.preventDefault();
    calls.forEach((call) => { call.hidden = false; });
    note.hidden = true;
    history.replaceState(null, "", location.pathname);
  });
  note.appendChild(all);
}

// ---- reps table: filter by part of a name and by rating
function setUpRepsFilter() {
  const form = document.getElementById("reps-filters");
  const rows = [...document.querySelectorAll("table#reps tbody tr[data-rep]")];
  if (!form || !rows.length) return;
  const apply = () => {
    const name = form.name.value.trim().toLowerCase();
    rows.forEach((row) => {
      const rating = !form.rating.value || row.dataset.rating === form.rating.value;
      row.hidden = !(rating && row.dataset.rep.toLowerCase().includes(name));
    });
  };
  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
}

// ---- audio: buttons and transcript times play from a moment
function setUpAudio() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-seek]");
    if (!button) return;
    const player = document.getElementById(button.dataset.player);
    if (!player) return;
    player.currentTime = parseFloat(button.dataset.seek);
    player.play().catch(() => {}); // a browser may refuse to autoplay; the position is still set
  });
  const match = /(?:^#|&)t=([0-9.]+)/.exec(location.hash);
  const player = document.getElementById("player");
  if (match && player) {
    const at = parseFloat(match[1]);
    const seek = () => { player.currentTime = at; };
    if (player.readyState >= 1) seek(); else player.addEventListener("loadedmetadata", seek, { once: true });
    document.querySelectorAll(".turn").forEach((turn) => {
      const time = turn.querySelector("[data-seek]");
      if (time && Math.abs(parseFloat(time.dataset.seek) - at) < 1.05) turn.classList.add("linked");
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  drawEmbeddedCharts();
  setUpFunnel();
  setUpStageFilters();
  setUpRepsFilter();
  setUpAudio();
});
