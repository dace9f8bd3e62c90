// The tenant console: a page over the same REST API as cloudctl (/v1), with the caller's own
// API token. The token stays in this tab (sessionStorage) and goes in the Authorization header;
// every text from the API is written with textContent, never parsed as HTML.
"use strict";

const TokenKey = "cloud.token";
const RefreshMs = 2000;
const $ = (id) => document.getElementById(id);

let refreshTimer = null;

/** Calls the API; answers the parsed body, or throws the problem's "CODE: detail". */
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TokenKey)}` };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    // Every mutation is safe to retry: the browser may resend it, the controller answers the first.
    headers["Idempotency-Key"] = crypto.randomUUID();
  }
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const parsed = text.length > 0 ? JSON.parse(text) : {};
  if (!response.ok) {
    throw new Error(`${parsed.code ?? response.status}: ${parsed.detail ?? response.statusText}`);
  }
  return parsed;
}

function show(message, kind = "error") {
  const element = $("message");
  element.textContent = message;
  element.className = kind === "error" ? "" : "info";
  element.hidden = message.length === 0;
}

function cell(row, text, field) {
  const td = row.insertCell();
  td.textContent = text;
  if (field) {
    td.dataset.field = field;
  }
  return td;
}

async function signIn(token) {
  sessionStorage.setItem(TokenKey, token);
  try {
    const { tenants = [] } = await api("GET", "/v1/tenants");
    const own = tenants.length === 1 ? tenants[0] : null;
    $("tenant").textContent = own ? `Tenant ${own.id}` : "Operator";
    $("tenant").hidden = false;
  } catch (error) {
    sessionStorage.removeItem(TokenKey);
    show(error.message);
    return;
  }
  show("");
  $("sign-in-panel").hidden = true;
  $("workspace").hidden = false;
  $("sign-out").hidden = false;
  await Promise.all([loadChoices(), refresh()]);
  refreshTimer = setInterval(() => refresh().catch((error) => show(error.message)), RefreshMs);
}

function signOut() {
  sessionStorage.removeItem(TokenKey);
  clearInterval(refreshTimer);
  location.reload();
}

async function loadChoices() {
  const [{ flavors = [] }, { images = [] }] = await Promise.all([api("GET", "/v1/flavors"), api("GET", "/v1/images")]);
  const flavorSelect = $("vm-flavor");
  flavorSelect.replaceChildren(...flavors.map((f) => new Option(`${f.name} (${f.vcpus ?? 0} vCPU, ${f.memoryMb ?? 0} MB)`, f.name)));
  const imageSelect = $("vm-image");
  imageSelect.replaceChildren(new Option("default", ""),
    ...images.filter((i) => i.state === "ACTIVE").map((i) => new Option(i.name, i.id)));
}

async function refresh() {
  const [{ vms = [] }, { tenants = [] }] = await Promise.all([api("GET", "/v1/vms?page_size=200"), api("GET", "/v1/tenants")]);
  renderVms(vms);
  if (tenants.length === 1) {
    renderQuota(tenants[0]);
  }
}

function renderQuota(tenant) {
  const body = $("quota").tBodies[0];
  body.replaceChildren();
  const quota = tenant.quota ?? {};
  const usage = tenant.usage ?? {};
  for (const [key, label] of [["instances", "Instances"], ["vcpus", "vCPUs"], ["memoryMb", "Memory (MB)"], ["diskGb", "Disk (GB)"], ["snapshots", "Snapshots"]]) {
    const row = body.insertRow();
    row.dataset.quota = key;
    cell(row, label);
    cell(row, `${usage[key] ?? 0} of ${quota[key] ?? 0}`, "usage");
  }
}

const Actions = [["start", ["STOPPED"]], ["stop", ["RUNNING"]], ["reboot", ["RUNNING"]], ["delete", ["RUNNING", "STOPPED", "ERROR"]]];

/** Updates the table in place, row by VM id, so that a button is never replaced under the pointer. */
function renderVms(vms) {
  const body = $("vms").tBodies[0];
  const rows = new Map([...body.rows].map((row) => [row.dataset.vmId, row]));
  $("no-vms").hidden = vms.length > 0;
  vms.forEach((vm, index) => {
    let row = rows.get(vm.id);
    rows.delete(vm.id);
    if (!row) {
      row = newVmRow(vm);
    }
    if (body.rows[index] !== row) {
      body.insertBefore(row, body.rows[index] ?? null);
    }
    row.vm = vm;
    const state = row.querySelector("[data-field='state']");
    state.textContent = vm.state;
    state.className = `state-${vm.state}`;
    row.querySelector("[data-field='flavor']").textContent = vm.flavor ?? "";
    row.querySelector("[data-field='vcpus']").textContent = String(vm.vcpus ?? 0);
    row.querySelector("[data-field='memory']").textContent = String(vm.memoryMb ?? 0);
    // The tenant's id of the VM's host, never the node's name: equal ids mean a shared host.
    const host = row.querySelector("[data-field='host']");
    host.textContent = vm.hostId ? vm.hostId.slice(0, 12) : "";
    host.title = vm.hostId ?? "";
    for (const [action, allowed] of Actions) {
      row.querySelector(`button[data-action='${action}']`).disabled = !allowed.includes(vm.state);
    }
    row.title = vm.error ?? "";
  });
  for (const gone of rows.values()) {
    gone.remove();
  }
}

function newVmRow(vm) {
  const row = document.createElement("tr");
  row.dataset.vmId = vm.id;
  row.dataset.name = vm.name;
  cell(row, vm.name, "name");
  cell(row, "", "state");
  cell(row, "", "flavor");
  cell(row, "", "vcpus");
  cell(row, "", "memory");
  cell(row, "", "host");
  cell(row, vm.createdAt ? new Date(vm.createdAt).toLocaleString() : "");
  const actions = row.insertCell();
  for (const [action] of Actions) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = action;
    button.dataset.action = action;
    button.addEventListener("click", () => act(row.vm, action));
    actions.append(button);
  }
  return row;
}

async function act(vm, action) {
  if (action === "delete" && !confirm(`Delete ${vm.name}? Its disk and snapshots go with it.`)) {
    return;
  }
  try {
    const operation = action === "delete"
      ? await api("DELETE", `/v1/vms/${encodeURIComponent(vm.id)}`)
      : await api("POST", `/v1/vms/${encodeURIComponent(vm.id)}/${action}`, action === "stop" ? { force: false } : {});
    await follow(operation);
  } catch (error) {
    show(error.message);
  }
  await refresh().catch((error) => show(error.message));
}

/** Shows an operation's progress until it ends; an operation that failed is an error. */
async function follow(operation) {
  const line = $("operation");
  while (operation.state === "PENDING" || operation.state === "RUNNING") {
    line.textContent = `${operation.kind} ${operation.progress ?? 0}%`;
    await new Promise((resolve) => setTimeout(resolve, 500));
    operation = await api("GET", `/v1/operations/${encodeURIComponent(operation.id)}`);
  }
  line.textContent = `${operation.kind} ${operation.state}`;
  if (operation.state === "FAILED") {
    throw new Error(`${operation.errorCode}: ${operation.errorMessage}`);
  }
  show("");
}

async function create(event) {
  event.preventDefault();
  const button = $("create");
  button.disabled = true;
  try {
    const request = { name: $("vm-name").value, flavor: $("vm-flavor").value };
    if ($("vm-image").value) {
      request.image = $("vm-image").value;
    }
    await follow(await api("POST", "/v1/vms", request));
    $("vm-name").value = "";
  } catch (error) {
    show(error.message);
  } finally {
    button.disabled = false;
  }
  await refresh().catch((error) => show(error.message));
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  $("create-form").addEventListener("submit", create);
  const token = sessionStorage.getItem(TokenKey);
  if (token) {
    signIn(token);
  }
});
