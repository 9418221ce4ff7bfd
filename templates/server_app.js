// The attempts page: the token comes from the URL fragment (never sent to the server) or the form,
// lives in sessionStorage only, and goes out as a Bearer header. Every value is set as text, never HTML.
"use strict";
(function () {
  const KEY = "grader-token";
  const $ = (id) => document.getElementById(id);

  function takeToken() {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (match) {
      sessionStorage.setItem(KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", window.location.pathname);
    }
    return sessionStorage.getItem(KEY);
  }

  function say(text) {
    $("status").textContent = text;
    $("status").hidden = !text;
  }

  async function api(path, token) {
    const response = await fetch(path, { headers: { Authorization: "Bearer " + token, Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || ("the server answered " + response.status));
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function render(submissions) {
    const rows = $("rows");
    rows.replaceChildren();
    for (const s of submissions) {
      const tr = document.createElement("tr");
      tr.className = "attempt";
      tr.dataset.id = s.id;
      cell(tr, s.received_at.replace("T", " ").slice(0, 19));
      cell(tr, s.student);
      cell(tr, s.exercise);
      cell(tr, s.state === "done" ? s.status : s.state + (s.position ? " (" + s.position + " ahead)" : ""));
      cell(tr, s.state === "done" && s.max_score !== null ? s.final_score + " / " + s.max_score : "");
      const td = cell(tr, "");
      if (s.report_url) {
        const a = document.createElement("a");
        a.href = s.report_url;
        a.textContent = "report";
        a.rel = "noreferrer";
        td.appendChild(a);
      }
      rows.appendChild(tr);
    }
    $("empty").hidden = submissions.length > 0;
    return submissions.some((s) => s.state !== "done");
  }

  function renderBoards(boards) {
    const root = $("boards");
    root.replaceChildren();
    if (boards.length) {
      const h = document.createElement("h2");
      h.textContent = "Leaderboards";
      root.appendChild(h);
      const p = document.createElement("p");
      p.textContent = "Each student's best attempt; everyone but you appears under a pseudonym.";
      root.appendChild(p);
    }
    for (const b of boards) {
      const table = document.createElement("table");
      table.className = "board";
      const caption = document.createElement("caption");
      caption.textContent = b.exercise + ": " + b.name + " (" + (b.order === "asc" ? "lower" : "higher") + " is better)";
      table.appendChild(caption);
      const body = document.createElement("tbody");
      for (const r of b.rows) {
        const tr = document.createElement("tr");
        if (r.mine) tr.className = "mine";
        cell(tr, String(r.rank));
        cell(tr, r.who);
        cell(tr, Number(r.value).toPrecision(4));
        body.appendChild(tr);
      }
      table.appendChild(body);
      root.appendChild(table);
    }
  }

  async function show(token) {
    try {
      const me = await api("/api/me", token);
      $("who").textContent = "Signed in as " + me.name + " (" + me.role + ").";
      const data = await api("/api/submissions", token);
      $("login").hidden = true;
      $("attempts").hidden = false;
      say("");
      const pending = render(data.submissions);
      renderBoards((await api("/api/leaderboards", token)).leaderboards);
      if (pending) setTimeout(() => show(token), 3000);
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        sessionStorage.removeItem(KEY);
        $("attempts").hidden = true;
        $("login").hidden = false;
      }
      say(error.message);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("token").value.trim());
      show($("token").value.trim());
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      window.location.reload();
    });
    const token = takeToken();
    if (token) show(token);
    else $("login").hidden = false;
  });
})();
