// A system page's "Mock interview" tab: the system's walkthrough (GET
// /api/systems/{name}/walkthrough), phase by phase, with the estimate's inputs as a form, each
// deep dive's claim with a button that shows it happening (POST …/walkthrough/demos/{demo}), and
// a practice mode that hides each answer behind the question and a clock.
"use strict";

(() => {
  const name = document.getElementById("system").dataset.system;
  const api = `/api/systems/${encodeURIComponent(name)}/walkthrough`;
  const status = document.getElementById("interview-status");
  const phases = document.getElementById("interview-phases");
  const tabs = [...document.querySelectorAll('.tabs [role="tab"]')];
  let loaded = false;
  let practice = false;
  const clocks = [];

  // --- the tabs: click or arrow keys; #interview in the address opens the interview ---------
  function select(tab) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    const interview = tab.id === "tab-interview";
    history.replaceState(null, "", interview ? "#interview" : location.pathname);
    if (interview && !loaded) load("");
  }
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      select(next);
      next.focus();
    });
  });

  // --- building blocks -------------------------------------------------------------------------
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // WALKTHROUGH.toml's prose: paragraphs apart by a blank line, a line starting "- " a bullet.
  function prose(text) {
    const out = document.createDocumentFragment();
    for (const paragraph of text.split(/\n\s*\n/)) {
      const items = [];
      for (const line of paragraph.split("\n")) {
        if (line.startsWith("- ") || items.length === 0) items.push(line.replace(/^- /, "\u2022 "));
        else items[items.length - 1] += ` ${line.trim()}`;
      }
      const bullets = items.filter((item) => item.startsWith("\u2022 "));
      if (bullets.length === items.length) {
        out.append(el("ul", {}, ...items.map((item) => el("li", { text: item.slice(2) }))));
      } else {
        out.append(el("p", { text: items[0] }));
        if (items.length > 1) {
          out.append(el("ul", {}, ...items.slice(1).map((item) => el("li", { text: item.replace(/^\u2022 /, "") }))));
        }
      }
    }
    return out;
  }

  function clock(ms) {
    const seconds = Math.floor(ms / 1000);
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  }

  // --- a demonstration: run it, show its lines, mark what held --------------------------------
  async function demonstrate(claim, button, output) {
    button.disabled = true;
    button.textContent = "Running…";
    output.hidden = false;
    output.replaceChildren(el("span", { text: "Starting it if need be, then running the demonstration…" }));
    try {
      const response = await fetch(`${api}/demos/${encodeURIComponent(claim.demo)}`, { method: "POST" });
      const body = await response.json();
      if (!response.ok) {
        output.replaceChildren(el("span", { class: "bad", text: body.detail ?? `HTTP ${response.status}` }));
        return;
      }
      output.replaceChildren(
        el("span", { class: "on", text: `on ${body.on}` }),
        ...body.lines.map((line) => el("span", {
          class: line.startsWith("held:") ? "ok" : line.startsWith("NOT HELD:") ? "bad" : "",
          text: line,
        })),
      );
      output.dataset.held = String(body.broken.length === 0);
    } catch (error) {
      output.replaceChildren(el("span", { class: "bad", text: String(error) }));
    } finally {
      button.disabled = false;
      button.textContent = "Show it again";
    }
  }

  function claims(list) {
    return el("ol", { class: "claims" }, ...list.map((claim) => {
      const item = el("li", { class: "claim" }, el("p", { text: claim.claim }));
      const where = el("p", { class: "where" }, "Implemented in ",
        el("a", { href: `/source/${claim.file}`, text: claim.file }));
      if (claim.test) where.append("; held by the test ", el("code", { text: claim.test }));
      item.append(where);
      if (claim.demo) {
        const button = el("button", { type: "button", class: "demo", "data-demo": claim.demo, text: "Show it live" });
        const output = el("pre", { class: "shown", "aria-live": "polite", hidden: "" });
        button.addEventListener("click", () => demonstrate(claim, button, output));
        item.append(button, output);
      }
      return item;
    }));
  }

  // --- the estimate's inputs: change one, recompute ------------------------------------------
  function inputs(interview) {
    const form = el("form", { class: "inputs", id: "estimate-inputs" });
    for (const input of interview.inputs) {
      form.append(el("label", { title: input.about }, el("span", { text: input.name }),
        el("input", { name: input.name, value: String(input.value), inputmode: "decimal", "aria-describedby": `about-${input.name}` }),
        el("small", { id: `about-${input.name}`, text: input.about })));
    }
    const error = el("p", { class: "bad", "aria-live": "polite" });
    form.append(el("button", { type: "submit", text: "Recompute" }), error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const query = new URLSearchParams(new FormData(form)).toString();
      const response = await fetch(`${api}?${query}`);
      const body = await response.json();
      if (!response.ok) {
        error.textContent = (body.errors ?? []).map((e) => e.detail).join("; ") || body.detail;
        return;
      }
      error.textContent = "";
      const estimate = body.phases.find((phase) => phase.kind === "estimate");
      document.getElementById("estimate-generated").textContent = estimate.generated;
    });
    return form;
  }

  // --- a phase: the question; the answer (behind a button and a clock in practice mode) -------
  function phase(interview, p, i) {
    const section = el("section", { class: "phase", "data-kind": p.kind });
    section.append(el("h3", { text: `${i + 1}/${interview.phases.length} ${p.title} (${p.minutes} of ${interview.minutes} min)` }));
    section.append(el("blockquote", { class: "question", text: `Interviewer: ${p.question}` }));
    const answer = el("div", { class: "answer" });
    answer.append(prose(p.answer));
    if (p.diagram) answer.append(el("pre", { class: "diagram", text: p.diagram }));
    if (p.kind === "estimate") answer.append(inputs(interview));
    if (p.generated) {
      answer.append(el("pre", { class: "generated", id: p.kind === "estimate" ? "estimate-generated" : undefined, text: p.generated }));
    }
    if (p.claims.length) answer.append(claims(p.claims));
    answer.append(el("h4", { text: "A strong answer covers" }),
      el("ul", { class: "checklist" }, ...p.checklist.map((item) =>
        el("li", {}, el("label", {}, el("input", { type: "checkbox" }), el("span", { text: item }))))));
    const time = el("span", { class: "clock", text: `0:00 of ${p.minutes}:00` });
    const start = el("button", { type: "button", class: "undo", text: "Start the clock" });
    const reveal = el("button", { type: "button", text: "Show our answer" });
    const bar = el("div", { class: "practice-bar" }, start, time, reveal);
    const phaseClock = { started: 0, minutes: p.minutes, node: time };
    clocks.push(phaseClock);
    start.addEventListener("click", () => { phaseClock.started = Date.now(); start.disabled = true; });
    reveal.addEventListener("click", () => { answer.hidden = false; reveal.hidden = true; });
    section.append(bar, answer);
    return section;
  }

  function render(interview) {
    clocks.length = 0;
    const toggle = el("input", { type: "checkbox", id: "practice" });
    toggle.checked = practice;
    toggle.addEventListener("change", () => { practice = toggle.checked; render(interview); });
    status.replaceChildren(
      el("span", { text: `${interview.title}: ${interview.minutes} minutes, answered from ` }),
      el("code", { text: interview.design }), el("span", { text: ". " }),
      el("label", { class: "toggle" }, toggle, " Practice: hide each answer until I ask, with a clock per phase"));
    phases.replaceChildren(...interview.phases.map((p, i) => phase(interview, p, i)));
    for (const section of phases.querySelectorAll(".phase")) {
      section.querySelector(".answer").hidden = practice;
      section.querySelector(".practice-bar").hidden = !practice;
    }
  }

  setInterval(() => {
    for (const c of clocks) {
      if (!c.started) continue;
      const elapsed = Date.now() - c.started;
      c.node.textContent = `${clock(elapsed)} of ${c.minutes}:00`;
      c.node.classList.toggle("over", elapsed > c.minutes * 60_000);
    }
  }, 500);

  async function load(query) {
    loaded = true;
    try {
      const response = await fetch(`${api}${query}`);
      const body = await response.json();
      if (!response.ok) {
        status.textContent = body.detail ?? `HTTP ${response.status}`;
        return;
      }
      render(body);
    } catch (error) {
      status.textContent = `The walkthrough could not be loaded: ${error}`;
      loaded = false;
    }
  }

  if (location.hash === "#interview") {
    const tab = document.getElementById("tab-interview");
    if (tab) select(tab);
  }
})();
