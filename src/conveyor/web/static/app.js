// Conveyor dashboard: actions through the JSON API, times in the viewer's time
// zone, and the overview's charts.
// Data from the server reaches the page through textContent only, never as HTML.
(function () {
  "use strict";

  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

  // Every htmx request repeats the CSRF cookie, as the server requires of unsafe ones.
  document.body.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken;
  });

  // A refresh that was sent to the sign-in page (the session ended) leaves the
  // page for it rather than showing the form inside a table.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    const landed = event.detail.xhr.responseURL;
    if (landed && new URL(landed).pathname.endsWith("/login")) {
      event.detail.shouldSwap = false;
      window.location.assign(landed);
    }
  });

  // --- notices and confirmation ---

  let toastTimer = null;

  function notify(message, failed) {
    const toast = document.getElementById("toast");
    toast.textContent = message;
    toast.classList.toggle("failed", Boolean(failed));
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toast.hidden = true; }, failed ? 8000 : 4000);
  }

  function confirmAction(message, label, danger) {
    const dialog = document.getElementById("confirm-dialog");
    dialog.querySelector(".confirm-message").textContent = message;
    const confirmButton = dialog.querySelector('button[value="confirm"]');
    confirmButton.textContent = label;
    confirmButton.classList.toggle("danger", danger);
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function () {
        resolve(dialog.returnValue === "confirm");
      }, { once: true });
    });
  }

  function refreshLiveParts() {
    document.querySelectorAll(".live").forEach(function (part) {
      htmx.trigger(part, "refresh");
    });
  }

  function explain(answer, response) {
    const detail = answer && answer.detail;
    if (Array.isArray(detail)) {
      return detail.map(function (item) { return item.msg || String(item); }).join("; ");
    }
    return detail ? String(detail) : "The server answered " + response.status + ".";
  }

  // Counts read as on the server's pages: 1,234.
  function formatCount(count) {
    return count.toLocaleString("en-US");
  }

  // "1 job", "1,234 jobs", "3 selected jobs".
  function jobsPhrase(count, adjective) {
    const words = adjective ? adjective + " " : "";
    return formatCount(count) + " " + words + (count === 1 ? "job" : "jobs");
  }

  // data-done is the sentence to show; a bulk action's count replaces "{count}".
  function doneMessage(done, answer) {
    const count = answer && typeof answer.count === "number" ? formatCount(answer.count) : "";
    return done.replace("{count}", count);
  }

  // Calls the API; the parsed answer, or null (and a notice) when it failed.
  async function callApi(url, method, body) {
    const headers = { "X-CSRF-Token": csrfToken, "Accept": "application/json" };
    if (body) {
      headers["Content-Type"] = "application/json";
    }
    try {
      const response = await fetch(url, {
        method: method,
        headers: headers,
        body: body || undefined,
        credentials: "same-origin",
      });
      const answer = await response.json().catch(function () { return null; });
      if (!response.ok) {
        notify(explain(answer, response), true);
        return null;
      }
      return answer || {};
    } catch (error) {
      notify("The request failed: " + error.message, true);
      return null;
    }
  }

  // --- actions: buttons with data-action="URL" call the API after a confirmation ---

  // A bulk action's confirmation says how many jobs it changes: data-count is the
  // URL of GET /api/jobs/count for them, its answer fills "{jobs}".
  async function confirmation(button) {
    const data = button.dataset;
    if (!data.count) {
      return data.confirm;
    }
    const answer = await callApi(data.count, "GET");
    if (answer === null) {
      return null;
    }
    if (answer.count === 0) {
      notify("No job matches: nothing to change.", false);
      return null;
    }
    return data.confirm.replace("{jobs}", jobsPhrase(answer.count));
  }

  async function act(button) {
    const data = button.dataset;
    button.disabled = true;
    try {
      const message = await confirmation(button);
      if (message === null) {
        return;
      }
      const confirmed = await confirmAction(
        message, button.textContent.trim(), button.classList.contains("danger"));
      if (!confirmed) {
        return;
      }
      const answer = await callApi(data.action, data.method || "POST", data.body);
      if (answer === null) {
        return;
      }
      if (data.then) {
        window.location.assign(data.then);
        return;
      }
      notify(doneMessage(data.done, answer), false);
      refreshLiveParts();
    } finally {
      button.disabled = false;
    }
  }

  // --- selection: the checked rows of the job list, for bulk actions by id ---

  // Remembered here, so a live refresh of the list (which replaces its rows)
  // keeps them checked.
  const selected = new Set();

  function showSelection() {
    const boxes = Array.from(document.querySelectorAll("input.select-job"));
    const shown = new Set(boxes.map(function (box) { return box.value; }));
    // A job that left the list (it changed state, or was deleted) leaves the
    // selection: an action never reaches a job the page no longer shows.
    selected.forEach(function (id) {
      if (!shown.has(id)) {
        selected.delete(id);
      }
    });
    boxes.forEach(function (box) { box.checked = selected.has(box.value); });
    const pageBox = document.querySelector("input.select-page");
    if (pageBox) {
      const checked = boxes.filter(function (box) { return box.checked; }).length;
      pageBox.checked = checked > 0 && checked === boxes.length;
      pageBox.indeterminate = checked > 0 && checked < boxes.length;
    }
    const bar = document.querySelector(".selection");
    if (bar) {
      bar.hidden = selected.size === 0;
      bar.querySelector(".selection-count").textContent = jobsPhrase(selected.size, "selected") + ":";
    }
  }

  async function actOnSelection(button) {
    const ids = Array.from(selected);
    const data = button.dataset;
    const confirmed = await confirmAction(
      data.label + " " + jobsPhrase(ids.length, "selected") + "?", data.label,
      button.classList.contains("danger"));
    if (!confirmed || ids.length === 0) {
      return;
    }
    const url = button.closest(".selection").dataset.bulkUrl + data.selectionAction;
    button.disabled = true;
    try {
      const answer = await callApi(url, "POST", JSON.stringify({ ids: ids }));
      if (answer === null) {
        return;
      }
      // Jobs the action does not apply to (a retry of a completed job) stay as they are.
      notify("Jobs " + data.done + ": " + formatCount(answer.count) + " of " +
             jobsPhrase(ids.length, "selected") + ".", false);
      selected.clear();
      showSelection();
      refreshLiveParts();
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("change", function (event) {
    const box = event.target;
    if (box.matches("input.select-job")) {
      if (box.checked) {
        selected.add(box.value);
      } else {
        selected.delete(box.value);
      }
    } else if (box.matches("input.select-page")) {
      document.querySelectorAll("input.select-job").forEach(function (row) {
        if (box.checked) {
          selected.add(row.value);
        } else {
          selected.delete(row.value);
        }
      });
    } else {
      return;
    }
    showSelection();
  });

  document.body.addEventListener("htmx:afterSwap", showSelection);

  document.addEventListener("click", function (event) {
    const button = event.target.closest(
      "button[data-action], button[data-selection-action], button[data-selection-clear]");
    if (!button) {
      return;
    }
    event.preventDefault();
    if (button.dataset.action) {
      act(button);
    } else if (button.dataset.selectionAction) {
      actOnSelection(button);
    } else {
      selected.clear();
      showSelection();
    }
  });

  // --- numbers and times as the page shows them ---

  // Counts read "20,000", like the server's own (the `number` filter).
  const COUNT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const VIEWER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

  function pad(value) {
    return String(value).padStart(2, "0");
  }

  // The zone's short name at that moment: "CEST", "GMT+5:30".
  function zoneAt(date) {
    const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
      .formatToParts(date).find(function (p) { return p.type === "timeZoneName"; });
    return part ? part.value : VIEWER_ZONE;
  }

  // "2024-05-01 08:30:00 GMT+5:30" in the viewer's zone, 24-hour.
  function localText(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) +
      " " + zoneAt(date);
  }

  // "2024-05-01 03:00:00 UTC", as the server writes it.
  function utcText(date) {
    return date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" +
      pad(date.getUTCDate()) + " " + pad(date.getUTCHours()) + ":" + pad(date.getUTCMinutes()) +
      ":" + pad(date.getUTCSeconds()) + " UTC";
  }

  // The server writes times in UTC: <time class="instant"> shows one, other <time>s
  // say how long ago it was. Here an instant shows the viewer's local time and a
  // relative one tells it on hover; both keep UTC in their title.
  function localizeTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-utc])").forEach(function (time) {
      // Python writes microseconds; Date.parse is only sure of milliseconds.
      const date = new Date(Date.parse(time.dateTime.replace(/(\.\d{3})\d+/, "$1")));
      if (Number.isNaN(date.getTime())) {
        return;
      }
      const utc = utcText(date);
      time.dataset.utc = utc;
      if (time.classList.contains("instant")) {
        time.textContent = localText(date);
        time.title = utc;
      } else {
        time.title = localText(date) + " (" + utc + ")";
      }
    });
  }

  localizeTimes(document);
  document.body.addEventListener("htmx:afterSettle", function () { localizeTimes(document); });

  // --- the overview's charts, from GET /api/stats ---

  const CHART_REFRESH_MS = 5000;
  const CHART_HEIGHT = 180;
  const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  const AXIS_TICKS = 10 + 5;  // uPlot's tick length and the gap before a label
  // Hovering one chart shows the same moment on the other.
  const CURSOR_SYNC = "conveyor-activity";
  // Running jobs have a scale of their own (the right-hand axis): on the queued
  // jobs' scale, 5 running next to 20,000 queued lie flat on the floor.
  const SERIES = {
    completed: { stroke: "#1f8a4c", fill: "#1f8a4c1a", width: 2 },
    failed: { stroke: "#c8322b", width: 2 },
    queued: { stroke: "#2563eb", fill: "#2563eb1a", width: 2 },
    active: { stroke: "#d97706", width: 2.5, scale: "active", whole: true },
  };
  const WHOLE_STEPS = [1, 2, 5].reduce(function (steps, first) {
    for (let step = first; step < 1e10; step *= 10) {
      steps.push(step);
    }
    return steps;
  }, []).sort(function (a, b) { return a - b; });
  // Tick labels of a time axis: 24-hour, the date under the first tick of each day.
  const DAY = 86400;
  const TIME_TICKS = [
    [DAY * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [DAY * 28, "{YYYY}-{MM}", null, null, null, null, null, null, 1],
    [DAY, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
    [60, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [1, "{HH}:{mm}:{ss}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
  ];
  const legendTime = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm}");
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = AXIS_FONT;

  // Snapshots of every queue, summed per moment; finished counts become rates
  // per minute over the gap to the snapshot before (the next one for the first).
  function summarize(snapshots) {
    const moments = new Map();
    snapshots.forEach(function (s) {
      const at = Date.parse(s.taken_at) / 1000;
      let sum = moments.get(at);
      if (!sum) {
        sum = { completed: 0, failed: 0, queued: 0, active: 0 };
        moments.set(at, sum);
      }
      sum.completed += s.completed;
      sum.failed += s.failed;
      sum.queued += s.created + s.retry;
      sum.active += s.active;
    });
    const times = Array.from(moments.keys()).sort(function (a, b) { return a - b; });
    const columns = { times: times, completed: [], failed: [], queued: [], active: [] };
    times.forEach(function (at, i) {
      const sum = moments.get(at);
      const gap = i > 0 ? at - times[i - 1] : times[1] - at;
      const perMinute = gap > 0 ? 60 / gap : null;
      columns.completed.push(perMinute === null ? null : sum.completed * perMinute);
      columns.failed.push(perMinute === null ? null : sum.failed * perMinute);
      columns.queued.push(sum.queued);
      columns.active.push(sum.active);
    });
    return columns;
  }

  function countLabels(u, splits) {
    return splits.map(function (v) { return v === null ? "" : COUNT.format(v); });
  }

  // An axis as wide as its longest label (uPlot's default is a fixed 50 px).
  function sizedToLabels(u, values) {
    const widest = (values || []).reduce(function (most, label) {
      return Math.max(most, measure.measureText(label).width);
    }, 0);
    return Math.ceil(widest + AXIS_TICKS + 4);
  }

  function fromZero(u, min, max) {
    return [0, Math.max(max, 1)];
  }

  function countAxis(scale, side, stroke, whole) {
    return {
      scale: scale, side: side, stroke: stroke, font: AXIS_FONT, values: countLabels,
      size: sizedToLabels, incrs: whole ? WHOLE_STEPS : undefined,
      grid: side === 3 ? { stroke: "#eef0f3" } : { show: false },
    };
  }

  function makeChart(box, names) {
    const axes = [
      { stroke: "#69717d", font: AXIS_FONT, grid: { stroke: "#eef0f3" }, values: TIME_TICKS },
      countAxis("y", 3, "#69717d", false),
    ];
    const scales = { x: { time: true }, y: { range: fromZero } };
    names.forEach(function (name) {
      const scale = SERIES[name].scale;
      if (scale) {
        scales[scale] = { range: fromZero };
        axes.push(countAxis(scale, 1, SERIES[name].stroke, SERIES[name].whole));
      }
    });
    const options = {
      width: box.clientWidth,
      height: CHART_HEIGHT,
      cursor: { sync: { key: CURSOR_SYNC } },
      scales: scales,
      axes: axes,
      series: [{
        value: function (u, v) { return v === null ? "–" : legendTime(new Date(v * 1000)); },
      }].concat(names.map(function (name) {
        const look = SERIES[name];
        return {
          label: name.charAt(0).toUpperCase() + name.slice(1),
          scale: look.scale || "y",
          stroke: look.stroke,
          fill: look.fill,
          width: look.width,
          points: { show: false },
          value: function (u, v) { return v === null ? "–" : COUNT.format(v); },
        };
      })),
    };
    const empty = [[]].concat(names.map(function () { return []; }));
    return new uPlot(options, empty, box);
  }

  function startCharts(section) {
    const queueSelect = section.querySelector('select[name="queue"]');
    const sinceSelect = section.querySelector('select[name="since"]');
    const emptyNote = section.querySelector(".chart-empty");
    const throughput = makeChart(
      section.querySelector('[data-chart="throughput"]'), ["completed", "failed"]);
    const depth = makeChart(section.querySelector('[data-chart="depth"]'), ["queued", "active"]);
    // Reachable from the page, for the browser tests and anyone curious in a console.
    section.charts = { throughput: throughput, depth: depth };
    const zoneNote = section.querySelector(".chart-zone");
    zoneNote.textContent = "Times are in your time zone, " + VIEWER_ZONE + " (" +
      zoneAt(new Date()) + ").";
    zoneNote.hidden = false;

    async function load() {
      const query = new URLSearchParams({ since: sinceSelect.value });
      // A queue's page fixes its queue (data-queue); the overview offers a choice.
      const queue = queueSelect ? queueSelect.value : section.dataset.queue;
      if (queue) {
        query.set("queue", queue);
      }
      let response;
      try {
        response = await fetch(section.dataset.statsUrl + "?" + query, {
          headers: { "Accept": "application/json" }, credentials: "same-origin",
        });
      } catch (error) {
        return;  // the next round tries again
      }
      if (!response.ok) {
        return;
      }
      const columns = summarize(await response.json());
      emptyNote.hidden = columns.times.length > 0;
      throughput.setData([columns.times, columns.completed, columns.failed]);
      depth.setData([columns.times, columns.queued, columns.active]);
      section.setAttribute("aria-busy", "false");
    }

    function fit() {
      [throughput, depth].forEach(function (chart) {
        chart.setSize({ width: chart.root.parentElement.clientWidth, height: CHART_HEIGHT });
      });
    }

    if (queueSelect) {
      queueSelect.addEventListener("change", load);
    }
    sinceSelect.addEventListener("change", load);
    window.addEventListener("resize", fit);
    load();
    setInterval(load, CHART_REFRESH_MS);
  }

  const charts = document.getElementById("charts");
  if (charts) {
    startCharts(charts);
  }
})();
