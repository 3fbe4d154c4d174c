// The upload page: queue photos (button or drop), send each to /api/anonymise with
// progress, then show before/after, the face count, outlines and downloads.
// Plain JavaScript, no build step. Without it the form still posts to /upload.
"use strict";

(function () {
  document.documentElement.classList.add("js");

  const form = document.getElementById("upload-form");
  if (!form) return;

  const input = document.getElementById("photos");
  const dropzone = document.getElementById("dropzone");
  const queueList = document.getElementById("queue");
  const queueHeading = document.getElementById("queue-heading");
  const formMessage = document.getElementById("form-message");
  const results = document.getElementById("results");
  const resultList = document.getElementById("result-list");
  const downloadAll = document.getElementById("download-all");
  const template = document.getElementById("result-template");
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const apiUrl = form.dataset.apiUrl;
  const zipUrl = form.dataset.zipUrl;
  const maxBytes = Number(form.dataset.maxBytes);
  const maxLabel = form.dataset.maxLabel;
  const PARALLEL_UPLOADS = 2;
  const REQUEST_TIMEOUT_MS = 120000;

  const MESSAGES = {
    0: "The service could not be reached. Check your connection and try again.",
    400: "This photo could not be read. It may be damaged or empty.",
    413: "This photo is too large. The limit is " + maxLabel + ".",
    415: "This file is not a photo we can read. Please choose a JPEG, PNG, WebP or GIF image.",
    503: "The face-blurring service is not available right now. Please try again in a minute.",
  };

  let queued = [];
  let cardCounter = 0;
  const finished = []; // {key, name} of every result shown, for "Download all"

  function humanBytes(size) {
    if (size >= 1024 * 1024) {
      const mb = size / (1024 * 1024);
      return (mb >= 10 ? mb.toFixed(0) : mb.toFixed(1)) + " MB";
    }
    if (size >= 1024) return Math.floor(size / 1024) + " KB";
    return size + " bytes";
  }

  function showFormMessage(text) {
    formMessage.textContent = text;
    formMessage.hidden = !text;
  }

  function renderQueue() {
    queueList.replaceChildren();
    queueHeading.hidden = queued.length === 0;
    queueHeading.textContent =
      queued.length === 1 ? "1 photo ready to send:" : queued.length + " photos ready to send:";
    queued.forEach(function (file, index) {
      const item = document.createElement("li");
      item.textContent = file.name + " (" + humanBytes(file.size) + ") ";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link-button";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + file.name);
      remove.addEventListener("click", function () {
        queued.splice(index, 1);
        renderQueue();
        input.focus();
      });
      item.appendChild(remove);
      queueList.appendChild(item);
    });
  }

  // Too-large photos are refused here, before a single byte is sent.
  function addFiles(files) {
    const refused = [];
    Array.from(files).forEach(function (file) {
      if (file.size > maxBytes) {
        refused.push(
          file.name + " is too large (" + humanBytes(file.size) + "). The limit is " + maxLabel + "."
        );
      } else {
        queued.push(file);
      }
    });
    showFormMessage(refused.join(" "));
    renderQueue();
  }

  input.addEventListener("change", function () {
    addFiles(input.files);
    input.value = ""; // the queue holds them now; picking again adds more
  });

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.remove("dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
  });
  // A photo dropped beside the zone must not make the browser leave the page.
  window.addEventListener("dragover", function (event) { event.preventDefault(); });
  window.addEventListener("drop", function (event) { event.preventDefault(); });

  function makeCard(file) {
    cardCounter += 1;
    const card = template.content.firstElementChild.cloneNode(true);
    const id = "photo-" + cardCounter;
    card.id = id;
    card.querySelector(".card-name").textContent = file.name;
    const toggle = card.querySelector(".outline-toggle");
    toggle.id = id + "-outline";
    card.querySelector(".outline-label").htmlFor = toggle.id;
    setStatus(card, "Waiting to be sent…");
    card.querySelector(".card-progress").value = 0;
    resultList.appendChild(card);
    return card;
  }

  function setStatus(card, text) {
    card.querySelector(".card-status").textContent = text;
  }

  function fail(card, message) {
    card.classList.add("failed");
    card.querySelector(".card-progress").hidden = true;
    setStatus(card, "Not anonymised.");
    const error = card.querySelector(".card-error");
    error.textContent = message;
    error.hidden = false;
  }

  const SVG = "http://www.w3.org/2000/svg";

  // Draws the anonymised regions over an image, in the image's own pixel space.
  function addOutline(frame, image, faces, shape) {
    function draw() {
      const old = frame.querySelector("svg");
      if (old) old.remove();
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "outline");
      svg.setAttribute("viewBox", "0 0 " + image.naturalWidth + " " + image.naturalHeight);
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("aria-hidden", "true");
      faces.forEach(function (face) {
        if (!face.region) return;
        const [x, y, w, h] = face.region;
        let mark;
        if (shape === "ellipse") {
          mark = document.createElementNS(SVG, "ellipse");
          mark.setAttribute("cx", x + w / 2);
          mark.setAttribute("cy", y + h / 2);
          mark.setAttribute("rx", w / 2);
          mark.setAttribute("ry", h / 2);
        } else {
          mark = document.createElementNS(SVG, "rect");
          mark.setAttribute("x", x);
          mark.setAttribute("y", y);
          mark.setAttribute("width", w);
          mark.setAttribute("height", h);
        }
        svg.appendChild(mark);
      });
      frame.appendChild(svg);
    }
    if (image.complete && image.naturalWidth) draw();
    else image.addEventListener("load", draw, { once: true });
  }

  function faceCountText(count) {
    if (count === 0) return "No faces found. Look at the photo before you publish it.";
    if (count === 1) return "1 face found and hidden";
    return count + " faces found and hidden";
  }

  function succeed(card, file, outcome) {
    card.classList.add("done");
    card.dataset.key = outcome.key;
    card.querySelector(".card-progress").hidden = true;
    setStatus(card, "Done.");
    const original = card.querySelector("img.original");
    const result = card.querySelector("img.result");
    original.src = URL.createObjectURL(file);
    original.alt = "Your original photo " + file.name;
    result.src = outcome.result_url;
    result.alt = "Anonymised copy of " + file.name;
    result.addEventListener("error", function () {
      fail(card, "The anonymised copy could not be loaded. Please try again in a minute.");
    }, { once: true });
    addOutline(original.parentElement, original, outcome.faces, outcome.shape);
    addOutline(result.parentElement, result, outcome.faces, outcome.shape);
    const faces = card.querySelector(".card-faces");
    faces.textContent = faceCountText(outcome.face_count);
    faces.dataset.count = outcome.face_count;
    const download = card.querySelector("a.download");
    download.href = outcome.download_url;
    download.setAttribute("download", outcome.download_name);
    download.setAttribute("aria-label", "Download the anonymised copy of " + file.name);
    const remove = card.querySelector("a.delete-link");
    remove.href = outcome.delete_url;
    remove.setAttribute("aria-label", "Delete " + file.name + " and its copy from this service");
    card.querySelector(".card-body").hidden = false;
    finished.push({ key: outcome.key, name: file.name });
    updateDownloadAll();
  }

  function updateDownloadAll() {
    if (finished.length < 2) {
      downloadAll.hidden = true;
      return;
    }
    const params = new URLSearchParams();
    finished.forEach(function (item) {
      params.append("key", item.key);
      params.append("name", item.name);
    });
    downloadAll.href = zipUrl + "?" + params.toString();
    downloadAll.textContent = "Download all " + finished.length + " (zip)";
    downloadAll.hidden = false;
  }

  function send(file, card, options) {
    return new Promise(function (resolve) {
      const body = new FormData();
      body.append("photo", file, file.name);
      body.append("method", options.method);
      body.append("shape", options.shape);
      const request = new XMLHttpRequest();
      request.open("POST", apiUrl);
      request.setRequestHeader("X-CSRFToken", csrfToken);
      request.setRequestHeader("Accept", "application/json");
      request.responseType = "json";
      request.timeout = REQUEST_TIMEOUT_MS;
      const progress = card.querySelector(".card-progress");
      request.upload.addEventListener("progress", function (event) {
        if (!event.lengthComputable) return;
        const percent = Math.round((event.loaded / event.total) * 100);
        progress.value = percent;
        setStatus(card, "Sending… " + percent + "%");
      });
      request.upload.addEventListener("load", function () {
        progress.removeAttribute("value"); // no way to measure the search: show activity
        setStatus(card, "Finding and hiding faces…");
      });
      request.addEventListener("load", function () {
        const answer = request.response;
        if (request.status === 200 && answer && answer.key) succeed(card, file, answer);
        else fail(card, (answer && answer.error) || MESSAGES[request.status] || MESSAGES[503]);
        resolve();
      });
      request.addEventListener("error", function () { fail(card, MESSAGES[0]); resolve(); });
      request.addEventListener("timeout", function () { fail(card, MESSAGES[503]); resolve(); });
      setStatus(card, "Sending…");
      request.send(body);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!queued.length) {
      showFormMessage("Please choose at least one photo first.");
      input.focus();
      return;
    }
    showFormMessage("");
    const options = {
      method: form.querySelector('input[name="method"]:checked').value,
      shape: form.querySelector('input[name="shape"]:checked').value,
    };
    const batch = queued.map(function (file) { return { file: file, card: makeCard(file) }; });
    queued = [];
    renderQueue();
    results.hidden = false;
    batch[0].card.scrollIntoView({ behavior: "smooth", block: "start" });
    // A few at a time: the function has little CPU to share.
    let next = 0;
    function worker() {
      if (next >= batch.length) return Promise.resolve();
      const job = batch[next++];
      return send(job.file, job.card, options).then(worker);
    }
    for (let i = 0; i < Math.min(PARALLEL_UPLOADS, batch.length); i++) worker();
  });
})();
