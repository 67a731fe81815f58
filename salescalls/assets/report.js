// salescalls report: draws the embedded charts, the filtered funnel, and makes transcripts seek audio.
"use strict";

const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

function drawChart(element, figure) {
  Plotly.react(element, figure.data, figure.layout, PLOT_CONFIG);
}

function drawEmbeddedCharts() {
  document.querySelectorAll(".chart[data-figure]").forEach((element) => {
    const source = document.getElementById(element.dataset.figure);
    if (source) drawChart(element, JSON.parse(source.textContent));
  });
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
  return value === null || value === undefined ? "–" : Math.round(value * 100) + "%";
}

function funnelSection(view, root) {
  const section = document.createElement("section");
  section.className = "funnel";
  const title = document.createElement("h2");
  title.textContent = `Script ${view.script}: ${view.calls} call${view.calls === 1 ? "" : "s"}`;
  section.appendChild(title);
  const models = document.createElement("p");
  models.className = "muted";
  models.textContent = `Stages labelled by ${view.stage_models}.`;
  section.appendChild(models);
  const chart = document.createElement("div");
  chart.className = "chart";
  section.appendChild(chart);

  const table = document.createElement("table");
  table.className = "funnel-table";
  const head = table.createTHead().insertRow();
  ["stage", "got this far", "occurred", "dropped here", "drop-off", "95% interval", "completed here", "dropped by customer",
    "outcomes of calls ended here"]
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
      link.href = root + stage.page;
      link.textContent = stage.stage;
      link.title = "calls that ended at this stage";
      name.appendChild(link);
    } else {
      name.textContent = stage.stage;
    }
    if (!stage.required) name.appendChild(Object.assign(document.createElement("small"), { textContent: " optional" }));
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
  const show = () => {
    const key = [form.period.value, form.segment.value, form.campaign.value].join("|");
    const views = funnel.views[key] || [];
    target.replaceChildren();
    if (!views.length) {
      target.appendChild(Object.assign(document.createElement("p"), {
        className: "muted",
        textContent: "No scored calls match these filters.",
      }));
    }
    views.forEach((view) => {
      const [section, chart] = funnelSection(view, root);
      target.appendChild(section);
      drawChart(chart, view.figure);
    });
    const query = new URLSearchParams({ period: form.period.value, segment: form.segment.value, campaign: form.campaign.value });
    history.replaceState(null, "", "#" + query.toString());
  };
  const wanted = new URLSearchParams(location.hash.slice(1));
  ["period", "segment", "campaign"].forEach((name) => {
    const value = wanted.get(name);
    if (value !== null && [...form[name].options].some((o) => o.value === value)) form[name].value = value;
  });
  form.addEventListener("change", show);
  show();
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
  setUpAudio();
});
