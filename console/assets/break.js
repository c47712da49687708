// A system page's "Break it": with the admin token, reads each of the system's fault switches
// (GET /api/systems/{name}/switches), shows its settings as fields, sets them (PUT …/{switch}),
// and undoes them in one click: every rate and latency back to 0, every list emptied.
"use strict";

(() => {
  const section = document.getElementById("break-it");
  if (!section) return;
  const name = document.getElementById("system").dataset.system;
  const tokenField = document.getElementById("admin-token");
  const status = document.getElementById("switches-status");
  const list = document.getElementById("switches");
  tokenField.value = sessionStorage.getItem("sdlab-admin-token") || "";

  const headers = () => ({
    authorization: `Bearer ${tokenField.value.trim()}`,
    "content-type": "application/json",
  });
  const healthy = (key, value) => {
    if (Array.isArray(value)) return [];
    if (typeof value === "boolean") return false;
    if (typeof value === "number" && (/_rate$/.test(key) || /_ms$/.test(key))) return 0;
    return value;
  };
  const isOn = (settings) =>
    Object.entries(settings).some(([key, value]) => JSON.stringify(healthy(key, value)) !== JSON.stringify(value));

  async function put(switchName, settings) {
    const response = await fetch(
      `/api/systems/${encodeURIComponent(name)}/switches/${encodeURIComponent(switchName)}`,
      { method: "PUT", headers: headers(), body: JSON.stringify(settings) },
    );
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || body.title);
    return body;
  }

  function render(state) {
    const card = document.createElement("form");
    card.className = "switch send";
    card.dataset.switch = state.name;
    const title = document.createElement("h3");
    title.textContent = state.name;
    card.append(title);
    if (state.endpoints > 1) {
      const note = document.createElement("p");
      note.className = "lede";
      note.textContent = `set on all ${state.endpoints} replicas`;
      card.append(note);
    }
    if (!state.settings) {
      card.append(document.createTextNode(state.error || "no answer"));
      return card;
    }
    const fields = new Map();
    for (const [key, value] of Object.entries(state.settings)) {
      const label = document.createElement("label");
      label.textContent = key;
      const input = document.createElement("input");
      input.name = key;
      if (typeof value === "boolean") {
        input.type = "checkbox";
        label.className = "toggle";
      }
      if (typeof value === "number") {
        input.type = "number";
        input.step = "any";
        input.min = "0";
        if (/_rate$/.test(key)) input.max = "1";
      }
      label.append(input);
      card.append(label);
      fields.set(key, { input, kind: Array.isArray(value) ? "list" : typeof value });
    }
    const read = () => {
      const settings = {};
      for (const [key, { input, kind }] of fields) {
        settings[key] = kind === "list"
          ? input.value.split(",").map((item) => item.trim()).filter(Boolean)
          : kind === "number" ? Number(input.value)
          : kind === "boolean" ? input.checked : input.value;
      }
      return settings;
    };
    const show = (settings) => {
      for (const [key, { input }] of fields) {
        const value = settings[key];
        if (typeof value === "boolean") input.checked = value;
        else input.value = Array.isArray(value) ? value.join(", ") : String(value);
      }
      card.classList.toggle("on", isOn(settings));
    };
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    const apply = document.createElement("button");
    apply.type = "submit";
    apply.textContent = "Apply";
    const undo = document.createElement("button");
    undo.type = "button";
    undo.className = "undo";
    undo.textContent = "Undo";
    buttons.append(apply, undo);
    card.append(buttons);
    const act = async (settings) => {
      try {
        show(await put(state.name, settings));
        status.textContent = `${state.name} set.`;
      } catch (error) {
        status.textContent = `${state.name}: ${error.message}`;
      }
    };
    card.addEventListener("submit", (event) => {
      event.preventDefault();
      act(read());
    });
    undo.addEventListener("click", () => {
      const settings = read();
      for (const key of Object.keys(settings)) settings[key] = healthy(key, settings[key]);
      act(settings);
    });
    show(state.settings);
    return card;
  }

  async function open() {
    sessionStorage.setItem("sdlab-admin-token", tokenField.value.trim());
    const response = await fetch(`/api/systems/${encodeURIComponent(name)}/switches`, { headers: headers() });
    const body = await response.json();
    if (!response.ok) {
      status.textContent = body.detail || body.title;
      list.replaceChildren();
      return;
    }
    status.textContent = body.length ? "" : "This system has no fault switches.";
    list.replaceChildren(...body.map(render));
  }

  document.getElementById("admin").addEventListener("submit", (event) => {
    event.preventDefault();
    open();
  });
  if (tokenField.value) open();
})();
