// A system page's "Try it": lists the endpoints of the system's OpenAPI document with a
// ready-made request each, sends the request through the console (POST /api/systems/{name}/send)
// and shows the exchange raw.
"use strict";

(() => {
  const name = document.getElementById("system").dataset.system;
  const form = document.getElementById("send");
  const field = (id) => document.getElementById(id);
  const operations = [];

  async function send(method, path, headers, body) {
    const response = await fetch(`/api/systems/${encodeURIComponent(name)}/send`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ method, path, headers, body }),
    });
    return { ok: response.ok, body: await response.json() };
  }

  function raw(side) {
    const head = [side.line].concat(side.headers.map(([k, v]) => `${k}: ${v}`)).join("\n");
    return `${head}\n\n${side.body}${side.truncated ? "\n… (cut at 64 KiB)" : ""}`;
  }

  // A body from the schema's examples: each property with an example, required ones first.
  function example(schema, components) {
    if (!schema) return null;
    if (schema.$ref) schema = components[schema.$ref.split("/").pop()] || {};
    if (schema.example !== undefined) return schema.example;
    if (!schema.properties) return null;
    const body = {};
    for (const [key, property] of Object.entries(schema.properties)) {
      const value = property.example ?? (property.$ref ? example(property, components) : undefined);
      if (value !== undefined && value !== null) body[key] = value;
      else if ((schema.required || []).includes(key)) body[key] = property.enum ? property.enum[0] : "";
    }
    return body;
  }

  function choose(operation) {
    field("method").value = operation.method;
    field("path").value = operation.path;
    field("body").value = operation.body ? JSON.stringify(operation.body, null, 2) : "";
    const headers = field("headers").value.split("\n").filter((line) => !/^content-type:/i.test(line));
    if (operation.body) headers.push("content-type: application/json");
    field("headers").value = headers.filter(Boolean).join("\n");
  }

  async function load() {
    const select = field("operation");
    const answer = await send("GET", "/openapi.json", [], null);
    if (!answer.ok || answer.body.response.line.indexOf(" 200 ") < 0) {
      select.options[0].textContent = "(no OpenAPI document: type a request below)";
      return;
    }
    const api = JSON.parse(answer.body.response.body);
    const components = (api.components && api.components.schemas) || {};
    select.options[0].textContent = "(choose an endpoint)";
    for (const [path, item] of Object.entries(api.paths || {})) {
      for (const [method, operation] of Object.entries(item)) {
        if (!["get", "post", "put", "delete", "patch", "head"].includes(method)) continue;
        const content = operation.requestBody && operation.requestBody.content;
        const json = content && content["application/json"];
        operations.push({
          method: method.toUpperCase(),
          path,
          body: json ? example(json.schema, components) : null,
        });
        const option = document.createElement("option");
        option.value = String(operations.length - 1);
        option.textContent = `${method.toUpperCase()} ${path}${operation.summary ? " — " + operation.summary : ""}`;
        select.append(option);
      }
    }
    select.addEventListener("change", () => {
      if (select.value !== "") choose(operations[Number(select.value)]);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const headers = field("headers").value.split("\n").map((line) => line.trim()).filter(Boolean)
      .map((line) => {
        const colon = line.indexOf(":");
        return colon < 0 ? [line, ""] : [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
      });
    const body = field("body").value || null;
    field("request").textContent = "…";
    field("response").textContent = "";
    const answer = await send(field("method").value, field("path").value, headers, body);
    if (answer.ok) {
      field("request").textContent = raw(answer.body.request);
      field("response").textContent =
        raw(answer.body.response) + `\n\n(${answer.body.elapsed_ms.toFixed(1)} ms)`;
    } else {
      field("request").textContent = "";
      field("response").textContent = `The console could not send it: ${answer.body.detail || answer.body.title}`;
    }
  });

  load();
})();
