// node-host dashboard: the upload with its progress, and asking before a
// rollback. Served from the hub itself (the page's Content-Security-Policy
// runs no other script); it writes text, never HTML.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function say(text, failed) {
  const status = document.getElementById("upload-status");
  status.textContent = text;
  status.className = failed ? "error" : "";
}

function settle(httpStatus, body, bar) {
  if (body && body.status === "compiling") {
    bar.removeAttribute("value"); // indeterminate while the hub compiles
    say("Uploaded. The hub is compiling it (big Python or JavaScript nodes take a minute)…");
    setTimeout(() => poll(body.sha256, bar), 500);
  } else if (body && body.status === "ready" && body.node) {
    bar.max = 1;
    bar.value = 1;
    say("Ready: " + body.node.name + " version " + body.node.version + ". ");
    const link = document.createElement("a");
    link.href = "/nodes/" + encodeURIComponent(body.node.name);
    link.id = "uploaded-node";
    link.textContent = "Open " + body.node.name;
    document.getElementById("upload-status").appendChild(link);
  } else {
    bar.value = 0;
    const code = body && body.code ? " [" + body.code + "]" : "";
    const message = body && body.error ? body.error : "the hub answered " + httpStatus;
    say("Refused: " + message + code, true);
  }
}

function poll(sha256, bar) {
  fetch("/ui/uploads/" + encodeURIComponent(sha256), { credentials: "same-origin" })
    .then((response) => response.json().then((body) => settle(response.status, body, bar)))
    .catch((err) => say("Lost the hub while waiting: " + err, true));
}

function upload(event) {
  event.preventDefault();
  const file = document.getElementById("component").files[0];
  const bar = document.getElementById("upload-progress");
  if (!file) {
    say("Choose a .wasm file first.", true);
    return;
  }
  const request = new XMLHttpRequest();
  request.open("POST", "/ui/upload");
  request.setRequestHeader("X-CSRF-Token", csrfToken());
  request.setRequestHeader("Content-Type", "application/wasm");
  request.upload.onprogress = (progress) => {
    if (progress.lengthComputable) {
      bar.max = progress.total;
      bar.value = progress.loaded;
      say("Uploading " + file.name + ": " + Math.round((100 * progress.loaded) / progress.total) + "%");
    }
  };
  request.onload = () => {
    let body = null;
    try {
      body = JSON.parse(request.responseText);
    } catch (_) {
      body = { error: request.responseText.slice(0, 200) };
    }
    settle(request.status, body, bar);
  };
  request.onerror = () => say("The upload did not reach the hub.", true);
  say("Uploading " + file.name + "…");
  request.send(file);
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload-form");
  if (form) form.addEventListener("submit", upload);
  for (const rollback of document.querySelectorAll("form.rollback")) {
    rollback.addEventListener("submit", (event) => {
      const version = rollback.querySelector('input[name="version"]').value;
      if (!window.confirm("Run version " + version + " for every new event?")) event.preventDefault();
    });
  }
});
