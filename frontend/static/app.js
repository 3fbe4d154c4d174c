// The upload page: queue photos (button or drop), send each to /api/anonymise with
// progress, then show before/after, the face count, outlines and downloads; then let
// the person correct the hidden areas on their original and apply them. A video goes
// straight to the inbox bucket (a presigned POST form from POST /videos) with upload progress,
// then its job is polled at /videos/<job> until it plays in the page.
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
  const videoTemplate = document.getElementById("video-template");
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const apiUrl = form.dataset.apiUrl;
  const zipUrl = form.dataset.zipUrl;
  const maxBytes = Number(form.dataset.maxBytes);
  const maxLabel = form.dataset.maxLabel;
  const videosUrl = form.dataset.videosUrl;
  const maxVideoBytes = Number(form.dataset.maxVideoBytes);
  const maxVideoLabel = form.dataset.maxVideoLabel;
  const PARALLEL_UPLOADS = 2;
  const REQUEST_TIMEOUT_MS = 120000;

  const MESSAGES = {
    0: "The service could not be reached. Check your connection and try again.",
    400: "This photo could not be read. It may be damaged or empty.",
    413: "This photo is too large. The limit is " + maxLabel + ".",
    415: form.dataset.notReadable, // the page's words, from the formats the service reads
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

  function isVideo(file) {
    return (file.type || "").startsWith("video/");
  }

  function renderQueue() {
    queueList.replaceChildren();
    queueHeading.hidden = queued.length === 0;
    const noun = queued.some(isVideo) ? "file" : "photo";
    queueHeading.textContent =
      queued.length === 1
        ? "1 " + noun + " ready to send:"
        : queued.length + " " + noun + "s ready to send:";
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
      const limit = isVideo(file) ? maxVideoBytes : maxBytes;
      if (file.size > limit) {
        refused.push(
          file.name + " is too large (" + humanBytes(file.size) + "). The limit is " +
            (isVideo(file) ? maxVideoLabel : maxLabel) + "."
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
    if (isVideo(file)) return makeVideoCard(file);
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
          // The oval inscribed in the region; each half towards a border it touches
          // reaches twice as far, cut by the viewBox: exactly what changed
          // (faceblur.anonymise.outline_oval). Four quarter ellipses, one path.
          const width = image.naturalWidth, height = image.naturalHeight;
          const cx = x + w / 2, cy = y + h / 2;
          const left = x <= 0 ? w : w / 2, right = x + w >= width ? w : w / 2;
          const top = y <= 0 ? h : h / 2, bottom = y + h >= height ? h : h / 2;
          mark = document.createElementNS(SVG, "path");
          mark.setAttribute("d", [
            "M", cx, cy - top,
            "A", right, top, 0, 0, 1, cx + right, cy,
            "A", right, bottom, 0, 0, 1, cx, cy + bottom,
            "A", left, bottom, 0, 0, 1, cx - left, cy,
            "A", left, top, 0, 0, 1, cx, cy - top, "Z",
          ].join(" "));
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

  // A card whose work is over, photo or video: its key, no progress bar, a last word.
  function markDone(card, key, message) {
    card.classList.add("done");
    card.dataset.key = key;
    card.querySelector(".card-progress").hidden = true;
    setStatus(card, message);
  }

  function succeed(card, file, outcome) {
    markDone(card, outcome.key, "Done.");
    const original = card.querySelector("img.original");
    const result = card.querySelector("img.result");
    original.src = URL.createObjectURL(file);
    original.alt = "Your original photo " + file.name;
    result.alt = "Anonymised copy of " + file.name;
    result.addEventListener("error", function () {
      fail(card, "The anonymised copy could not be loaded. Please try again in a minute.");
    }, { once: true });
    showResult(card, file, outcome, faceCountText(outcome.face_count));
    card.querySelector(".card-body").hidden = false;
    finished.push({ key: outcome.key, name: file.name });
    updateDownloadAll();
    makeEditor(card, file, outcome);
  }

  // The result's picture, outline, count and download link; again after each apply.
  function showResult(card, file, outcome, countText) {
    const result = card.querySelector("img.result");
    if (result.getAttribute("src") !== outcome.result_url) result.src = outcome.result_url;
    const regions = (outcome.regions || []).map(function (region) { return { region: region }; });
    addOutline(result.parentElement, result, regions, outcome.shape);
    const faces = card.querySelector(".card-faces");
    faces.textContent = countText;
    faces.dataset.count = regions.length;
    setLinks(card, file, outcome);
  }

  // A finished card's download and delete links (a photo's outcome or a video's job).
  function setLinks(card, file, finished) {
    const download = card.querySelector("a.download");
    download.href = finished.download_url;
    download.setAttribute("download", finished.download_name);
    download.setAttribute("aria-label", "Download the anonymised copy of " + file.name);
    const remove = card.querySelector("a.delete-link");
    remove.href = finished.delete_url;
    remove.setAttribute("aria-label", "Delete " + file.name + " and its copy from this service");
  }

  // --- correcting the hidden areas ---------------------------------------------------
  // The regions are [x, y, w, h] in pixels of the upright photo, as the function answers
  // and takes them. The original shows from the person's own file; browsers turn it
  // upright by its EXIF orientation (image-orientation: from-image), so its natural size
  // is the upright size and a region is placed as a share of it, whatever the scale.
  const MIN_DRAWN_PX = 6; // on screen: a smaller drag is a click or a slip, not a region

  function makeEditor(card, file, outcome) {
    const original = card.querySelector("img.original");
    const frame = original.parentElement;
    const editor = card.querySelector(".editor");
    const [status, undoButton, applyButton, error] = [
      ".editor-status", ".undo", ".apply", ".editor-error",
    ].map(function (selector) { return editor.querySelector(selector); });
    const layer = document.createElement("div");
    layer.className = "regions";
    frame.appendChild(layer);
    let regions = (outcome.regions || []).map(function (region) { return region.slice(); });
    const history = [];
    let drawing = null;

    function size() {
      return { width: original.naturalWidth, height: original.naturalHeight };
    }

    function place(element, region) {
      const natural = size();
      const [x, y, w, h] = region;
      element.style.left = (100 * x) / natural.width + "%";
      element.style.top = (100 * y) / natural.height + "%";
      element.style.width = (100 * w) / natural.width + "%";
      element.style.height = (100 * h) / natural.height + "%";
    }

    function edit(change) {
      history.push(regions.map(function (region) { return region.slice(); }));
      change();
      render();
    }

    function render() {
      layer.replaceChildren();
      regions.forEach(function (region, index) {
        const box = document.createElement("div");
        box.className = "region" + (outcome.shape === "ellipse" ? " ellipse" : "");
        box.dataset.region = region.join(",");
        place(box, region);
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "remove-region";
        remove.textContent = "×";
        remove.setAttribute("aria-label", "Remove hidden area " + (index + 1));
        remove.addEventListener("click", function () {
          edit(function () { regions.splice(index, 1); });
          (layer.querySelector(".remove-region") || applyButton).focus();
        });
        box.appendChild(remove);
        layer.appendChild(box);
      });
      status.textContent =
        (regions.length === 1 ? "1 area" : regions.length + " areas") +
        " will be hidden. Drag on your original to add one.";
      undoButton.disabled = history.length === 0;
    }

    // Where a pointer is, in pixels of the upright photo, kept inside it.
    function pointAt(event) {
      const bounds = original.getBoundingClientRect();
      const natural = size();
      const x = ((event.clientX - bounds.left) / bounds.width) * natural.width;
      const y = ((event.clientY - bounds.top) / bounds.height) * natural.height;
      return {
        x: Math.min(Math.max(x, 0), natural.width),
        y: Math.min(Math.max(y, 0), natural.height),
        screenX: event.clientX,
        screenY: event.clientY,
      };
    }

    function drawnRegion(start, end) {
      const left = Math.floor(Math.min(start.x, end.x));
      const top = Math.floor(Math.min(start.y, end.y));
      const right = Math.ceil(Math.max(start.x, end.x));
      const bottom = Math.ceil(Math.max(start.y, end.y));
      return [left, top, right - left, bottom - top];
    }

    layer.addEventListener("pointerdown", function (event) {
      if (event.button !== 0 || event.target.closest("button")) return;
      event.preventDefault();
      layer.setPointerCapture(event.pointerId);
      const draft = document.createElement("div");
      draft.className = "region draft";
      layer.appendChild(draft);
      drawing = { start: pointAt(event), draft: draft, pointer: event.pointerId };
    });
    layer.addEventListener("pointermove", function (event) {
      if (!drawing || event.pointerId !== drawing.pointer) return;
      place(drawing.draft, drawnRegion(drawing.start, pointAt(event)));
    });
    function finish(event, keep) {
      if (!drawing || event.pointerId !== drawing.pointer) return;
      const start = drawing.start;
      const end = pointAt(event);
      drawing.draft.remove();
      drawing = null;
      const region = drawnRegion(start, end);
      const big =
        Math.abs(end.screenX - start.screenX) >= MIN_DRAWN_PX &&
        Math.abs(end.screenY - start.screenY) >= MIN_DRAWN_PX;
      if (keep && big && region[2] > 0 && region[3] > 0) {
        edit(function () { regions.push(region); });
      }
    }
    layer.addEventListener("pointerup", function (event) { finish(event, true); });
    layer.addEventListener("pointercancel", function (event) { finish(event, false); });

    undoButton.addEventListener("click", function () {
      if (!history.length) return;
      regions = history.pop();
      render();
      if (undoButton.disabled) applyButton.focus();
    });

    // The original again, from the person's device, with exactly these regions.
    applyButton.addEventListener("click", function () {
      const body = new FormData();
      body.append("photo", file, file.name);
      body.append("method", outcome.method);
      body.append("shape", outcome.shape);
      body.append("detect", "false");
      body.append("regions", JSON.stringify(regions));
      // The new copy replaces this one: the page deletes the copy being corrected.
      body.append("replaces", card.dataset.key);
      applyButton.disabled = true;
      error.hidden = true;
      card.classList.add("applying");
      status.textContent = "Hiding the chosen areas…";
      fetch(apiUrl, {
        method: "POST",
        body: body,
        headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      })
        .then(function (response) {
          return response.json().then(
            function (answer) { return { status: response.status, answer: answer }; },
            function () { return { status: response.status, answer: null }; }
          );
        })
        .then(function (reply) {
          const answer = reply.answer;
          if (reply.status !== 200 || !answer || !answer.key) {
            throw new Error((answer && answer.error) || MESSAGES[reply.status] || MESSAGES[503]);
          }
          const count = answer.regions.length;
          showResult(card, file, answer, count === 1 ? "1 area hidden" : count + " areas hidden");
          finished.forEach(function (item) {
            if (item.key === card.dataset.key) item.key = answer.key;
          });
          card.dataset.key = answer.key;
          updateDownloadAll();
          regions = answer.regions.map(function (region) { return region.slice(); });
          render();
          status.textContent = "Applied: " + status.textContent;
        })
        .catch(function (problem) {
          error.textContent = problem.message || MESSAGES[0];
          error.hidden = false;
          render();
        })
        .finally(function () {
          applyButton.disabled = false;
          card.classList.remove("applying");
        });
    });

    if (original.complete && original.naturalWidth) render();
    else original.addEventListener("load", render, { once: true });
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

  // --- videos: upload to the inbox, then follow the job ---------------------------------

  const POLL_FIRST_MS = 1000;
  const POLL_MAX_MS = 5000;
  const POLL_GIVE_UP_MS = 3 * 3600 * 1000; // a job never runs this long: stop asking
  const POLL_MAX_FAILURES = 12; // answers in a row that say nothing (service down)
  const VIDEO_MESSAGES = {
    upload: "The video could not be uploaded. Check your connection and try again.",
    lost: "The progress of this video cannot be followed any more. It may still finish: look in the gallery later.",
  };

  function makeVideoCard(file) {
    cardCounter += 1;
    const card = videoTemplate.content.firstElementChild.cloneNode(true);
    card.id = "video-" + cardCounter;
    card.querySelector(".card-name").textContent = file.name;
    const progress = card.querySelector(".card-progress");
    progress.value = 0;
    progress.setAttribute("aria-label", "Progress of " + file.name);
    setStatus(card, "Waiting to be sent…");
    resultList.appendChild(card);
    return card;
  }

  function readJson(response) {
    return response.json().then(
      function (answer) { return { status: response.status, answer: answer }; },
      function () { return { status: response.status, answer: null }; }
    );
  }

  // Resolves once the upload is over (well or not): the next file may start; the job
  // is then followed on its own.
  function sendVideo(file, card) {
    setStatus(card, "Preparing the upload…");
    return fetch(videosUrl, {
      method: "POST",
      headers: {
        "X-CSRFToken": csrfToken,
        "Content-Type": "application/json",
        Accept: "application/json",
      },
      body: JSON.stringify({ name: file.name, size: file.size, type: file.type }),
    })
      .then(readJson, function () { return { status: 0, answer: null }; })
      .then(function (reply) {
        const job = reply.answer;
        if (reply.status !== 200 || !job || !job.upload) {
          fail(card, (job && job.error) || MESSAGES[reply.status] || MESSAGES[503]);
          return;
        }
        card.dataset.job = job.job;
        return upload(file, card, job.upload).then(function (sent) {
          if (sent) follow(file, card, job.status_url);
        });
      });
  }

  // A presigned POST form: its fields (policy, signature, key, type) first, the file last.
  // The policy allows this one file's size only, for a few minutes.
  function upload(file, card, form) {
    return new Promise(function (resolve) {
      const progress = card.querySelector(".card-progress");
      const body = new FormData();
      Object.keys(form.fields).forEach(function (name) { body.append(name, form.fields[name]); });
      body.append("file", file);
      const request = new XMLHttpRequest();
      request.open("POST", form.url);
      request.upload.addEventListener("progress", function (event) {
        if (!event.lengthComputable) return;
        const percent = Math.round((event.loaded / event.total) * 100);
        progress.value = percent;
        setStatus(card, "Uploading… " + percent + "%");
      });
      request.addEventListener("load", function () {
        if (request.status >= 200 && request.status < 300) {
          progress.value = 100;
          setStatus(card, "Uploaded. Waiting for its turn…");
          resolve(true);
        } else {
          fail(card, VIDEO_MESSAGES.upload);
          resolve(false);
        }
      });
      request.addEventListener("error", function () { fail(card, VIDEO_MESSAGES.upload); resolve(false); });
      setStatus(card, "Uploading… 0%");
      request.send(body);
    });
  }

  // Asks for the job's progress, less often as time goes by, until done or failed.
  function follow(file, card, statusUrl) {
    const progress = card.querySelector(".card-progress");
    const started = Date.now();
    let delay = POLL_FIRST_MS;
    let failures = 0;
    progress.value = 0;

    function again() {
      if (Date.now() - started > POLL_GIVE_UP_MS) {
        fail(card, VIDEO_MESSAGES.lost);
        return;
      }
      setTimeout(ask, delay);
      delay = Math.min(delay * 1.5, POLL_MAX_MS);
    }

    function ask() {
      fetch(statusUrl, { headers: { Accept: "application/json" } })
        .then(readJson, function () { return { status: 0, answer: null }; })
        .then(function (reply) {
          const job = reply.answer;
          if (reply.status === 200 && job) {
            failures = 0;
            show(job);
          } else if (reply.status === 429) {
            delay = POLL_MAX_MS; // asked too often (the person's rate limit): slow down
            again();
          } else if (reply.status === 404 || reply.status === 400) {
            fail(card, (job && job.error) || VIDEO_MESSAGES.lost);
          } else if (++failures >= POLL_MAX_FAILURES) {
            fail(card, VIDEO_MESSAGES.lost);
          } else {
            again();
          }
        });
    }

    function show(job) {
      if (job.state === "done") {
        videoDone(card, file, job);
        return;
      }
      if (job.state === "failed") {
        fail(card, "This video could not be anonymised: " + String(job.reason).replace(/\.$/, "") + ".");
        return;
      }
      if (job.state === "running") {
        const shown = videoProgress(job);
        if (shown.value === null) {
          progress.removeAttribute("value");
        } else {
          progress.value = shown.value;
        }
        setStatus(card, shown.text);
      } else {
        setStatus(card, "Uploaded. Waiting for its turn…");
      }
      again();
    }

    setTimeout(ask, delay);
  }

  // A running job's bar (percent, or null when unknown) and words: frames done of the total,
  // else (total unknown) a split job's segments done of theirs.
  function videoProgress(job) {
    const frames = job.frames_done, total = job.frames_total, segments = job.segments_total;
    let where = "";
    if (segments > 0) {
      where = job.segments_done < segments
        ? "segment " + (job.segments_done + 1) + " of " + segments + ", "
        : "joining " + segments + " segments, ";
    }
    let value = null;
    if (total > 0) {
      value = Math.round((100 * frames) / total);
    } else if (segments > 0) {
      value = Math.round((100 * job.segments_done) / segments);
    }
    const counted = total > 0 ? frames + " of " + total + " frames" : frames + " frames";
    return { value: value, text: "Processing: " + where + counted };
  }

  function videoDone(card, file, job) {
    markDone(card, job.key, "Done. Every frame was processed; watch it before you publish it.");
    const video = card.querySelector("video.result-video");
    video.setAttribute("aria-label", "Anonymised copy of " + file.name);
    video.addEventListener("error", function () {
      fail(card, "The anonymised video could not be loaded. Please try again in a minute.");
    }, { once: true });
    video.src = job.result_url;
    setLinks(card, file, job);
    card.querySelector(".card-body").hidden = false;
    if (!finished.some(function (done) { return done.key === job.key; })) {
      finished.push({ key: job.key, name: file.name });
    }
    updateDownloadAll();
    if (job.tracks_url) review(card, file, job);
  }

  // --- reviewing a video: people shown or hidden, areas hidden over frames --------------
  // Tracks come from the function (boxes only), turned by the page into the pixels the
  // player shows (frontend/review.py), which is also how boxes drawn here are sent back;
  // thumbnails are cut here from the person's own file, which never leaves the browser.
  function review(card, file, job) {
    const section = card.querySelector(".review");
    const video = card.querySelector("video.result-video");
    const overlay = card.querySelector(".review-overlay");
    const list = card.querySelector(".track-list");
    const areaList = card.querySelector(".area-list");
    const message = card.querySelector(".review-message");
    const field = function (name) { return card.querySelector(".area-" + name); };
    const state = { tracks: [], rate: 25, areas: [], frames: 0, byFrame: [] };

    fetch(job.tracks_url, { headers: { Accept: "application/json" } })
      .then(readJson, function () { return { status: 0, answer: null }; })
      .then(function (reply) {
        if (reply.status !== 200 || !reply.answer) return; // no review for this one
        const answer = reply.answer;
        const edits = answer.edits || { show: [], hide: [] };
        state.rate = answer.rate || 25;
        state.tracks = answer.tracks;
        state.areas = edits.hide.map(function (edit) {
          return { frames: edit.frames.slice(), region: edit.region.slice() };
        });
        state.byFrame = state.tracks.map(function (track) {
          const boxes = new Map();
          track.boxes.forEach(function (box) { boxes.set(box[0], box.slice(1)); });
          state.frames = Math.max(state.frames, track.last + 1);
          return boxes;
        });
        listTracks(edits.show || []);
        listAreas();
        section.hidden = false;
        message.textContent = "";
        draw();
      });

    function listTracks(shown) {
      list.replaceChildren();
      state.tracks.forEach(function (track) {
        const item = document.createElement("li");
        item.className = "track-item";
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.className = "track-hidden";
        box.value = track.track;
        box.checked = shown.indexOf(track.track) < 0;
        box.addEventListener("change", draw);
        label.append(box, " Person " + track.track + " hidden (frames " + track.first +
          " to " + track.last + ")");
        const thumb = document.createElement("canvas");
        thumb.className = "track-thumb";
        thumb.width = thumb.height = 64;
        thumb.setAttribute("role", "img");
        thumb.setAttribute("aria-label", "Person " + track.track + " in your original");
        item.append(thumb, label);
        list.appendChild(item);
      });
      thumbnails();
    }

    // One hidden <video> of the original seeks to each track's largest box in turn.
    function thumbnails() {
      const canvases = list.querySelectorAll(".track-thumb");
      const source = document.createElement("video");
      source.muted = true;
      source.preload = "auto";
      let index = -1;
      function next() {
        index += 1;
        if (index >= state.tracks.length) {
          URL.revokeObjectURL(source.src);
          return;
        }
        const box = largest(state.tracks[index].boxes);
        source.currentTime = (box[0] + 0.5) / state.rate;
      }
      source.addEventListener("seeked", function () {
        const box = largest(state.tracks[index].boxes);
        const canvas = canvases[index];
        const side = Math.max(box[3], box[4]);
        canvas.getContext("2d").drawImage(source, box[1], box[2], box[3], box[4],
          0, 0, (64 * box[3]) / side, (64 * box[4]) / side);
        next();
      });
      source.addEventListener("loadeddata", next, { once: true });
      source.src = URL.createObjectURL(file);
    }

    function largest(boxes) {
      return boxes.reduce(function (best, box) {
        return box[3] * box[4] > best[3] * best[4] ? box : best;
      });
    }

    function hiddenTracks() {
      return Array.from(list.querySelectorAll(".track-hidden")).map(function (box) {
        return { track: Number(box.value), hidden: box.checked };
      });
    }

    function currentFrame() {
      return Math.floor(video.currentTime * state.rate + 1e-3);
    }

    // Outlines of what is hidden in the frame shown: people (dashed) and added areas.
    function draw() {
      const width = video.clientWidth;
      const height = video.clientHeight;
      overlay.width = width;
      overlay.height = height;
      if (!video.videoWidth) return;
      const scale = width / video.videoWidth;
      const context = overlay.getContext("2d");
      context.clearRect(0, 0, width, height);
      context.lineWidth = 2;
      const frame = currentFrame();
      context.setLineDash([6, 4]);
      context.strokeStyle = "#ffd400";
      hiddenTracks().forEach(function (choice, index) {
        const box = state.byFrame[index] && state.byFrame[index].get(frame);
        if (choice.hidden && box) {
          context.strokeRect(box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale);
        }
      });
      context.strokeStyle = "#00d0ff";
      state.areas.forEach(function (area) {
        if (frame < area.frames[0] || frame > area.frames[1]) return;
        const r = area.region;
        context.strokeRect(r[0] * scale, r[1] * scale, r[2] * scale, r[3] * scale);
      });
    }
    // A second review of the same card (after Apply) replaces the first one's listeners.
    const events = ["timeupdate", "seeked", "loadedmetadata", "pause", "play"];
    if (card.reviewDraw) {
      events.forEach(function (name) { video.removeEventListener(name, card.reviewDraw); });
      window.removeEventListener("resize", card.reviewDraw);
    }
    card.reviewDraw = draw;
    events.forEach(function (name) { video.addEventListener(name, draw); });
    window.addEventListener("resize", draw);

    // Drawing a box: the paused frame, a drag over the video; it fills the fields.
    card.querySelector(".draw-area").onclick = function () {
      video.pause();
      overlay.classList.add("drawing");
      message.textContent = "Drag over the video to draw the box.";
    };
    let start = null;
    overlay.onpointerdown = function (event) {
      start = [event.offsetX, event.offsetY];
      overlay.setPointerCapture(event.pointerId);
    };
    overlay.onpointerup = function (event) {
      if (!start) return;
      const scale = video.videoWidth / video.clientWidth;
      const x = Math.max(0, Math.min(start[0], event.offsetX)) * scale;
      const y = Math.max(0, Math.min(start[1], event.offsetY)) * scale;
      field("x").value = Math.round(x);
      field("y").value = Math.round(y);
      field("w").value = Math.max(1, Math.round(Math.abs(event.offsetX - start[0]) * scale));
      field("h").value = Math.max(1, Math.round(Math.abs(event.offsetY - start[1]) * scale));
      const frame = currentFrame();
      field("first").value = frame;
      const end = Math.max(state.frames - 1, frame);
      field("last").value = Math.min(frame + Math.round(2 * state.rate), end);
      start = null;
      overlay.classList.remove("drawing");
      message.textContent = "Box drawn. Choose its frames, then add it.";
      field("first").focus();
    };

    card.querySelector(".add-area").onclick = function () {
      const values = ["x", "y", "w", "h", "first", "last"].map(function (name) {
        return Number(field(name).value);
      });
      if (!values.every(Number.isInteger) || values.some(function (v) { return v < 0; }) ||
          values[2] < 1 || values[3] < 1 || values[5] < values[4] ||
          values[0] + values[2] > video.videoWidth || values[1] + values[3] > video.videoHeight) {
        message.textContent = "This area does not fit the video or its frames are reversed.";
        return;
      }
      state.areas.push({ frames: [values[4], values[5]], region: values.slice(0, 4) });
      listAreas();
      draw();
      message.textContent = "Area added. Apply to make a new copy.";
    };

    function listAreas() {
      areaList.replaceChildren();
      state.areas.forEach(function (area, index) {
        const item = document.createElement("li");
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "remove-area";
        remove.textContent = "Remove";
        remove.setAttribute("aria-label", "Remove area " + (index + 1));
        remove.onclick = function () {
          state.areas.splice(index, 1);
          listAreas();
          draw();
        };
        item.append("Area " + (index + 1) + ": frames " + area.frames[0] + " to " +
          area.frames[1] + " ", remove);
        areaList.appendChild(item);
      });
    }

    card.querySelector(".apply-edits").onclick = function () {
      const edits = {
        show: hiddenTracks().filter(function (c) { return !c.hidden; }).map(function (c) {
          return c.track;
        }),
        hide: state.areas,
      };
      const reason = card.querySelector(".review-reason").value.trim();
      if (edits.show.length && !reason) {
        message.textContent = "Please say why people are left visible: it is kept in the audit log.";
        card.querySelector(".review-reason").focus();
        return;
      }
      message.textContent = "Applying your changes…";
      fetch(job.edits_url, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "X-CSRFToken": csrfToken,
          Accept: "application/json",
        },
        body: JSON.stringify({ edits: edits, reason: reason }),
      })
        .then(readJson, function () { return { status: 0, answer: null }; })
        .then(function (reply) {
          if (reply.status !== 202 || !reply.answer) {
            message.textContent = (reply.answer && reply.answer.error) || MESSAGES[0];
            return;
          }
          section.hidden = true;
          card.classList.remove("done");
          card.querySelector(".card-progress").hidden = false;
          setStatus(card, "Making a new copy with your changes…");
          follow(file, card, reply.answer.status_url);
        });
    };
  }

  function send(file, card, options) {
    if (isVideo(file)) return sendVideo(file, card);
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
