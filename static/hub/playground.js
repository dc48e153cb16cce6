// The playground (templates/hub/dashboard/playground.html): streams each answer into the conversation as it
// arrives. The form posts to the hub's own dashboard endpoints with the session and its CSRF token (never with a
// key), reads the server-sent events with fetch and a ReadableStream, and shows model output as text only
// (textContent, never innerHTML). Stop aborts the fetch: the hub sees the client leave, cancels the provider's
// answer and bills what was produced, as for any API client. Without this script the form posts the page itself.
"use strict";

(() => {
  const form = document.getElementById("playground-form");
  if (!form) return;
  const turns = document.getElementById("playground-turns");
  const model = form.elements.model;
  const history = form.elements.history;
  const prompt = form.elements.prompt;
  const send = document.getElementById("playground-send");
  const stop = document.getElementById("playground-stop");
  const clear = document.getElementById("playground-clear");
  const text = form.dataset;
  let conversation = [];
  let controller = null;

  const kind = () => {
    const option = model.options[model.selectedIndex];
    return (option && option.dataset.kind) || "chat";
  };
  const showSettings = () => {
    for (const fieldset of form.querySelectorAll("fieldset[data-kind]")) fieldset.hidden = fieldset.dataset.kind !== kind();
  };

  const turn = (role, label) => {
    const item = document.createElement("li");
    item.className = `playground-turn ${role}`;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = label;
    item.append(who);
    turns.append(item);
    return item;
  };
  const part = (item, tag, className) => {
    const element = document.createElement(tag);
    element.className = className;
    item.append(element);
    return element;
  };
  const showError = (item, message) => {
    const banner = part(item, "p", "banner danger");
    banner.setAttribute("role", "alert");
    banner.textContent = message || text.textFailed;
  };
  const errorOf = async (response) => {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || text.textFailed;
    } catch (error) {
      return text.textFailed;
    }
  };

  // The usage record is written by the hub's meter a moment after the answer ends (later still for a stopped
  // one): 202 means not yet.
  const showUsage = async (item, requestId) => {
    if (!requestId) return;
    const line = part(item, "p", "usage muted");
    line.textContent = text.textPending;
    const url = text.usageUrl.replace("REQUEST_ID", encodeURIComponent(requestId));
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const response = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (response.status === 200) {
        line.textContent = (await response.json()).line;
        return;
      }
      if (response.status !== 202) break;
    }
    line.textContent = text.textNoUsage;
  };

  // Server-sent events: blank-line separated; each `data:` line one JSON chunk, `[DONE]` the end.
  const readStream = async (response, output) => {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    let answer = "";
    let failure = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      const events = buffered.split(/\r?\n\r?\n/);
      buffered = events.pop();
      for (const event of events) {
        for (const line of event.split(/\r?\n/)) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          let chunk;
          try {
            chunk = JSON.parse(data);
          } catch (error) {
            continue;
          }
          if (chunk.error) failure = chunk.error.message || text.textFailed;
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && typeof delta.content === "string") {
            answer += delta.content;
            output.textContent = answer;
          }
        }
      }
    }
    return { answer, failure };
  };

  const busy = (on) => {
    send.disabled = on;
    stop.disabled = !on;
    form.setAttribute("aria-busy", on ? "true" : "false");
  };

  const chat = async (data, body, item) => {
    const output = part(item, "div", "text");
    let response;
    let requestId = "";
    try {
      response = await fetch(text.chatUrl, { method: "POST", body: data, credentials: "same-origin", signal: controller.signal });
      requestId = response.headers.get("x-request-id") || "";
      if (!response.ok) {
        showError(item, await errorOf(response));
      } else {
        const { answer, failure } = await readStream(response, output);
        if (failure) showError(item, failure);
        conversation.push({ role: "user", content: body }, { role: "assistant", content: answer });
      }
    } catch (error) {
      if (error.name !== "AbortError") showError(item, text.textFailed);
      else conversation.push({ role: "user", content: body }, { role: "assistant", content: output.textContent });
    }
    return requestId;
  };

  const draw = async (data, item) => {
    let requestId = "";
    try {
      const response = await fetch(text.imageUrl, { method: "POST", body: data, credentials: "same-origin", signal: controller.signal });
      requestId = response.headers.get("x-request-id") || "";
      if (!response.ok) {
        showError(item, await errorOf(response));
      } else {
        const answer = await response.json();
        const image = document.createElement("img");
        image.className = "playground-image";
        image.alt = text.textImage;
        image.src = `data:image/${answer.output_format || "png"};base64,${answer.data[0].b64_json}`;
        item.append(image);
      }
    } catch (error) {
      if (error.name !== "AbortError") showError(item, text.textFailed);
    }
    return requestId;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (controller || !form.reportValidity()) return;
    const said = prompt.value;
    history.value = JSON.stringify(conversation);
    const data = new FormData(form);
    prompt.value = "";
    const user = turn("user", text.textYou);
    part(user, "div", "text").textContent = said;
    const item = turn("assistant", text.textModel);
    controller = new AbortController();
    busy(true);
    const requestId = kind() === "image" ? await draw(data, item) : await chat(data, said, item);
    controller = null;
    busy(false);
    clear.hidden = false;
    await showUsage(item, requestId);
  });

  stop.addEventListener("click", () => {
    if (controller) controller.abort();
  });
  clear.addEventListener("click", () => {
    conversation = [];
    turns.replaceChildren();
    clear.hidden = true;
  });
  model.addEventListener("change", showSettings);
  stop.hidden = false;
  showSettings();
})();
