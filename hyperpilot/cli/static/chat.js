// The hyperpilot web chat (served by `hyperpilot serve`). Every text from the server is shown
// with textContent, never as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
let chat = null;
let seen = 0;
let poller = null;

async function api(path, options) {
  try {
    const response = await fetch(path, options);
    try {
      return await response.json();
    } catch (e) {
      return { text: `the server answered ${response.status} without a reply`, kind: "error" };
    }
  } catch (e) {
    return { text: "the server cannot be reached; is hyperpilot serve still running?", kind: "error" };
  }
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function say(who, text, kind) {
  const div = document.createElement("div");
  div.className = `msg ${who} ${kind || ""}`;
  div.textContent = text;
  $("log").appendChild(div);
  div.scrollIntoView({ block: "end" });
}

function showPlot(url) {
  if (!url) return;
  const img = $("plot");
  img.onload = () => { $("plotbox").hidden = false; };
  img.onerror = () => {};  // no complete trial yet: keep the last plot
  img.src = url;
}

function showStudy(study) {
  $("study").textContent = study ? `study: ${study}` : "";
}

function answer(reply) {
  say("bot", reply.text, reply.kind);
  showStudy(reply.study);
  showPlot(reply.plot);
}

async function poll() {
  const body = await api(`/api/chats/${encodeURIComponent(chat)}/events?after=${seen}`);
  if (!body.events) return;
  let trials = false;
  for (const line of body.events) {
    $("progress").textContent += line + "\n";
    trials = trials || line.startsWith("trial ");
  }
  $("progress").scrollTop = $("progress").scrollHeight;
  seen = body.next;
  if (trials && body.running) {
    showStudy(body.running);
    showPlot(`/api/chats/${encodeURIComponent(chat)}/plot?study=${encodeURIComponent(body.running)}&n=${seen}`);
  }
}

async function busy(label, work) {
  $("send").disabled = true;
  $("status").textContent = label;
  const started = Date.now();
  poller = setInterval(() => {
    $("status").textContent = `${label} ${Math.round((Date.now() - started) / 1000)} s`;
    poll();
  }, 700);
  try {
    answer(await work());
  } finally {
    clearInterval(poller);
    await poll();
    $("send").disabled = false;
    $("status").textContent = "";
    $("text").focus();
  }
}

async function send(text) {
  say("you", text);
  await busy("working…", () => post(`/api/chats/${encodeURIComponent(chat)}/messages`, { text }));
}

async function upload(file) {
  say("you", `uploading ${file.name}`);
  const form = new FormData();
  form.append("file", file);
  await busy("uploading…", () => api(`/api/chats/${encodeURIComponent(chat)}/files`, { method: "POST", body: form }));
}

async function start() {
  const resume = new URLSearchParams(location.search).get("chat");
  let body = await post("/api/chats", { resume });
  if (!body.chat) {  // a saved conversation that is gone: say so, start a new one
    say("bot", body.text, "error");
    body = await post("/api/chats", {});
  }
  chat = body.chat;
  history.replaceState(null, "", `?chat=${encodeURIComponent(chat)}`);
  for (const entry of body.history || []) say(entry.role === "user" ? "you" : "bot", entry.text, entry.kind);
  if (!(body.history || []).length) {
    say("bot", "Upload a table (CSV, TSV or Parquet), then say what to tune, e.g. 'tune a random forest " +
        "to predict churn, maximise AUC, 30 trials'. I restate the plan and start when you say yes.", "answer");
  }
  showStudy(body.study);
  showPlot(body.plot);
  await poll();
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || !chat || $("send").disabled) return;
  $("text").value = "";
  send(text);
});
$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  $("file").value = "";
  if (file && chat) upload(file);
});
start();
