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

  // data-done is the sentence to show; a bulk action's count replaces "{count}".
  function doneMessage(done, answer) {
    const count = answer && typeof answer.count === "number" ? String(answer.count) : "";
    return done.replace("{count}", count);
  }

  // --- actions: buttons with data-action="URL" call the API after a confirmation ---

  async function act(button) {
    const data = button.dataset;
    const confirmed = await confirmAction(
      data.confirm, button.textContent.trim(), button.classList.contains("danger"));
    if (!confirmed) {
      return;
    }
    const headers = { "X-CSRF-Token": csrfToken, "Accept": "application/json" };
    if (data.body) {
      headers["Content-Type"] = "application/json";
    }
    button.disabled = true;
    try {
      const response = await fetch(data.action, {
        method: data.method || "POST",
        headers: headers,
        body: data.body || undefined,
        credentials: "same-origin",
      });
      const answer = await response.json().catch(function () { return null; });
      if (!response.ok) {
        notify(explain(answer, response), true);
        return;
      }
      if (data.then) {
        window.location.assign(data.then);
        return;
      }
      notify(doneMessage(data.done, answer), false);
      refreshLiveParts();
    } catch (error) {
      notify("The request failed: " + error.message, true);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (button) {
      event.preventDefault();
      act(button);
    }
  });

  // --- times in the viewer's time zone ---

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
  const COLORS = { completed: "#1f8a4c", failed: "#c8322b", waiting: "#2563eb", active: "#d97706" };

  // Snapshots of every queue, summed per moment; finished counts become rates
  // per minute over the gap to the snapshot before (the next one for the first).
  function summarize(snapshots) {
    const moments = new Map();
    snapshots.forEach(function (s) {
      const at = Date.parse(s.taken_at) / 1000;
      let sum = moments.get(at);
      if (!sum) {
        sum = { completed: 0, failed: 0, waiting: 0, active: 0 };
        moments.set(at, sum);
      }
      sum.completed += s.completed;
      sum.failed += s.failed;
      sum.waiting += s.created + s.retry;
      sum.active += s.active;
    });
    const times = Array.from(moments.keys()).sort(function (a, b) { return a - b; });
    const columns = { times: times, completed: [], failed: [], waiting: [], active: [] };
    times.forEach(function (at, i) {
      const sum = moments.get(at);
      const gap = i > 0 ? at - times[i - 1] : times[1] - at;
      const perMinute = gap > 0 ? 60 / gap : null;
      columns.completed.push(perMinute === null ? null : sum.completed * perMinute);
      columns.failed.push(perMinute === null ? null : sum.failed * perMinute);
      columns.waiting.push(sum.waiting);
      columns.active.push(sum.active);
    });
    return columns;
  }

  function makeChart(box, series) {
    const options = {
      width: box.clientWidth,
      height: CHART_HEIGHT,
      tzDate: function (seconds) { return uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"); },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, 1)]; } } },
      axes: [
        { stroke: "#69717d", grid: { stroke: "#eef0f3" } },
        { stroke: "#69717d", grid: { stroke: "#eef0f3" }, size: 48 },
      ],
      series: [{}].concat(series.map(function (name) {
        return {
          label: name.charAt(0).toUpperCase() + name.slice(1),
          stroke: COLORS[name],
          fill: COLORS[name] + "1a",
          width: 2,
          points: { show: false },
          value: function (u, v) { return v === null ? "–" : (Math.round(v * 10) / 10).toString(); },
        };
      })),
    };
    const empty = [[]].concat(series.map(function () { return []; }));
    return new uPlot(options, empty, box);
  }

  function startCharts(section) {
    const queueSelect = section.querySelector('select[name="queue"]');
    const sinceSelect = section.querySelector('select[name="since"]');
    const emptyNote = section.querySelector(".chart-empty");
    const throughput = makeChart(
      section.querySelector('[data-chart="throughput"]'), ["completed", "failed"]);
    const depth = makeChart(section.querySelector('[data-chart="depth"]'), ["waiting", "active"]);

    async function load() {
      const query = new URLSearchParams({ since: sinceSelect.value });
      if (queueSelect.value) {
        query.set("queue", queueSelect.value);
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
      depth.setData([columns.times, columns.waiting, columns.active]);
      section.setAttribute("aria-busy", "false");
    }

    function fit() {
      [throughput, depth].forEach(function (chart) {
        chart.setSize({ width: chart.root.parentElement.clientWidth, height: CHART_HEIGHT });
      });
    }

    queueSelect.addEventListener("change", load);
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
