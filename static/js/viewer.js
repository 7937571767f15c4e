// The review page's viewer: one canvas, slices rendered by our server.
// Swipe up/down (one finger), the wheel or the arrow keys move through the slices;
// pinch or ctrl+wheel zooms; two fingers or a mouse drag pan. JPEG while scrolling,
// the lossless PNG once the slice stays on screen. The slice on screen is fetched on
// its own (the first one by the page itself, an <img> the canvas replaces); the rest
// of the series arrives in runs of BATCH slices per request (a few requests at a time,
// nearest runs first: the run around the slice on screen, then the runs above and below
// it in turn; the server fetches a cold series from the PACS once). A run's slices are
// kept as their JPEG bytes; only those near the slice on screen (NEAR each way) are made
// into images, as it moves (300 images at once took the page's main thread ~600 ms on a
// 2-core machine, and delayed the rest of the series). The slider moves
// through the slices too; with "Window/level drag" pressed, a drag (mouse, pen or finger) changes the window:
// across for width, up and down for level. Orientation markers come from the server
// (workflow/imaging/orientation.py). No libraries.
(function () {
  "use strict";
  var dataNode = document.getElementById("viewer-data");
  if (!dataNode) return;
  var data = JSON.parse(dataNode.textContent);
  var canvas = document.getElementById("viewer-canvas");
  var ctx = canvas.getContext("2d");
  var statusNode = document.getElementById("viewer-status");
  var problem = document.getElementById("viewer-problem");
  var presetSelect = document.getElementById("viewer-preset");
  var keyButton = document.getElementById("viewer-key");
  var slider = document.getElementById("viewer-slider");
  var wlButton = document.getElementById("viewer-wl");
  var edges = ["left", "right", "top", "bottom"];
  var started = performance.now();
  // The slice the page opens on, already asked for (and often shown) by the page itself
  // while it was parsed: the canvas adopts it, and takes its place once it draws.
  var opening = document.getElementById("viewer-first");

  // window: a {center, width} of the user's own (a drag), else the preset's.
  var state = { study: null, series: null, index: 0, preset: "brain", window: null,
                zoom: 1, panX: 0, panY: 0, windowing: false };
  var images = new Map();     // frame url -> HTMLImageElement (loaded or loading)
  var held = new Map();       // frame url -> Blob: a slice from a run, not yet an image
  var NEAR = 12;              // slices each way of the one on screen kept as images
  var failed = new Set();
  var runs = [], fetching = 0, BATCH = 64, MAX_FETCHES = 4;
  var lossless = null;        // timer for the PNG swap
  var flagged = data.flagged || [];

  function seriesUrl(study, series, preset, first, count) {
    return data.series_url.replace("STUDY", encodeURIComponent(study))
      .replace("SERIES", encodeURIComponent(series)) + "?first=" + first + "&count=" + count +
      "&preset=" + encodeURIComponent(preset) + "&format=jpeg";
  }
  function frameUrl(study, sop, preset, format) {
    return data.frame_url.replace("STUDY", encodeURIComponent(study))
      .replace("SOP", encodeURIComponent(sop)) +
      "?frame=1&preset=" + encodeURIComponent(preset) + "&format=" + format;
  }
  function current() { return state.series.instances[state.index]; }
  // What the server is asked for: the preset's name, or "center,width" after a drag.
  function windowParam() {
    return state.window ? Math.round(state.window.center) + "," + Math.round(state.window.width)
                        : state.preset;
  }
  function urlFor(index, format) {
    return frameUrl(state.study.study_uid, state.series.instances[index].sop_uid, windowParam(),
                    format || "jpeg");
  }

  function watch(img, url) {
    img.addEventListener("load", function () { counted(url); if (url === wanted()) draw(img); });
    img.addEventListener("error", function () { failed.add(url); images.delete(url);
                                                if (url === wanted()) explain(url); });
  }
  // The image of a frame url: from the bytes a run brought (held), else from the server.
  function load(url) {
    var found = images.get(url);
    if (found) return found;
    var img = new Image();
    img.decoding = "async";
    img.dataset.frame = url;
    images.set(url, img);
    var blob = held.get(url);
    if (blob) {
      held.delete(url);
      var src = URL.createObjectURL(blob);
      var done = function () { URL.revokeObjectURL(src); };
      img.addEventListener("load", done);
      img.addEventListener("error", done);
      watch(img, url);
      img.src = src;
    } else {
      watch(img, url);
      img.src = url;
    }
    return img;
  }
  // A slice that came in a series answer: its bytes, filed under its frame url; it is in
  // the viewer now (drawn without the network), made an image once it is near (nearby).
  function adopt(url, blob) {
    if (images.has(url) || held.has(url)) return;
    held.set(url, blob);
    counted(url);
  }
  // The slices near the one on screen, as images ready to draw, nearest first.
  function nearby() {
    if (!state.series || !held.size) return;
    var n = state.series.instances.length;
    for (var d = 0; d <= NEAR; d++) {
      [state.index + d, state.index - d].forEach(function (i) {
        if (i >= 0 && i < n && held.has(urlFor(i))) load(urlFor(i));
      });
    }
  }
  // When the whole current series was in the viewer, each slice an image or its JPEG
  // held, drawn without the network (read by the benchmark).
  var arrived = new Set();
  function counted(url) {
    if (!state.series || url.indexOf("format=jpeg") < 0) return;
    arrived.add(url);
    // Only once enough have arrived: a check per slice over the whole series is O(n²).
    if (canvas.dataset.seriesLoadedMs || arrived.size < state.series.instances.length) return;
    if (state.series.instances.every(function (_, i) { return arrived.has(urlFor(i)); })) {
      canvas.dataset.seriesLoadedMs = String(Math.round(performance.now()));
    }
  }
  // When every slice's bytes were in (read by the benchmark beside seriesLoadedMs).
  var received = new Set();
  function fetched(run, sops) {
    if (canvas.dataset.seriesFetchedMs || run.series !== state.series.series_uid) return;
    sops.forEach(function (sop) { received.add(sop); });
    received.add(current().sop_uid);  // the slice on screen came on its own
    if (state.series.instances.every(function (x) { return received.has(x.sop_uid); })) {
      canvas.dataset.seriesFetchedMs = String(Math.round(performance.now()));
    }
  }
  function fetchRun(run) {
    var open = true;
    function release() { if (open) { open = false; fetching--; } }
    fetching++;
    fetch(seriesUrl(run.study, run.series, run.preset, run.first, run.count),
          { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      // The next request goes out while this body is read and cut up.
      release(); pumpRuns();
      var sizes = (r.headers.get("X-Frame-Sizes") || "").split(",").map(Number);
      var sops = (r.headers.get("X-Frame-Sops") || "").split(",");
      var type = r.headers.get("X-Frame-Type") || "image/jpeg";
      // As one Blob, cut into slices of it: the bytes are not copied per slice.
      return r.blob().then(function (body) {
        var at = 0;
        fetched(run, sops);
        sops.forEach(function (sop, i) {
          // Filed by SOP UID, not by position: a slice is never shown in another's place.
          if (sizes[i] > 0) adopt(frameUrl(run.study, sop, run.preset, "jpeg"),
                                  body.slice(at, at + sizes[i], type));
          at += sizes[i] || 0;
        });
        nearby();
      });
    }).catch(function () {
      // The slice on screen is fetched on its own and explains a failure; stop here
      // rather than ask a failing PACS again for every run (Retry starts over).
      release(); runs.length = 0;
    });
  }
  function pumpRuns() {
    while (fetching < MAX_FETCHES && runs.length) fetchRun(runs.shift());
  }
  function wanted() { return state.series ? urlFor(state.index) : null; }

  function explain(url) {
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.headers.get("Content-Type") === "application/json" ? r.json() : { error: "HTTP " + r.status };
    }).then(function (body) {
      problem.querySelector("span").textContent = body.error || "This image could not be shown.";
      problem.hidden = false;
    }).catch(function () {
      problem.querySelector("span").textContent = "The server could not be reached.";
      problem.hidden = false;
    });
  }

  function resize() {
    var box = canvas.getBoundingClientRect();
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    show();
  }

  function draw(img) {
    if (!img.complete || !img.naturalWidth) return;
    var w = canvas.width, h = canvas.height;
    var fit = Math.min(w / img.naturalWidth, h / img.naturalHeight) * state.zoom;
    var dw = img.naturalWidth * fit, dh = img.naturalHeight * fit;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, h);
    ctx.imageSmoothingEnabled = state.zoom < 2;
    ctx.drawImage(img, (w - dw) / 2 + state.panX, (h - dh) / 2 + state.panY, dw, dh);
    if (opening) { opening.remove(); opening = null; }
    if (!canvas.dataset.firstPaintMs) {
      canvas.dataset.firstPaintMs = String(Math.round(performance.now() - started));
      canvas.dataset.firstPaintSinceNavigationMs = String(Math.round(performance.now()));
      // Thumbnails wait for the first slice: it is the one the specialist is waiting for.
      document.querySelectorAll("#series-strip img[data-src]").forEach(function (t) { t.src = t.dataset.src; });
    }
    canvas.dataset.painted = img.dataset.frame;
    canvas.dataset.paintedSlice = String(state.index + 1);  // only the current slice is drawn
  }

  function show() {
    if (!state.series) return;
    problem.hidden = true;
    var jpeg = urlFor(state.index, "jpeg");
    var png = urlFor(state.index, "png");
    var best = images.get(png);
    var img = best && best.complete && best.naturalWidth ? best : load(jpeg);
    draw(img);
    nearby();
    var n = state.series.instances.length;
    statusNode.textContent = "Slice " + (state.index + 1) + "/" + n + " · " +
      (state.window ? "W " + Math.round(state.window.width) + " / L " + Math.round(state.window.center)
                    : (data.preset_labels[state.preset] || state.preset)) +
      (state.zoom !== 1 ? " · " + state.zoom.toFixed(1) + "×" : "");
    canvas.dataset.slice = String(state.index + 1);
    canvas.dataset.preset = state.preset;
    canvas.dataset.window = windowParam();
    slider.max = String(n);
    slider.value = String(state.index + 1);
    slider.setAttribute("aria-valuetext", "Slice " + (state.index + 1) + " of " + n);
    var marks = current().markers || state.series.markers || {};
    edges.forEach(function (edge) {
      document.getElementById("marker-" + edge).textContent = marks[edge] || "";
    });
    if (keyButton) {
      var on = isFlagged(current().sop_uid);
      keyButton.setAttribute("aria-pressed", on ? "true" : "false");
      keyButton.textContent = (on ? "★" : "☆") + " Key image";
    }
    clearTimeout(lossless);
    lossless = setTimeout(function () {
      var full = load(png);
      if (full.complete && full.naturalWidth && png === urlFor(state.index, "png")) draw(full);
      else full.addEventListener("load", function () {
        if (png === urlFor(state.index, "png")) draw(full);
      }, { once: true });
    }, 350);
  }

  function preload() {
    // The whole series so that scrolling never waits: the run around the current slice,
    // then the runs above and below it in turn. Runs already here are not asked again.
    var n = state.series.instances.length, index = state.index;
    var start = Math.max(0, Math.min(n - BATCH, index - BATCH / 2)), up = start, down = start;
    var ordered = [];
    while (up < n || down > 0) {
      if (up < n) { ordered.push([up, Math.min(n, up + BATCH)]); up += BATCH; }
      if (down > 0) { ordered.push([Math.max(0, down - BATCH), down]); down -= BATCH; }
    }
    // Nearest first: by how far the run's nearest slice is from the one on screen.
    function away(r) { return index < r[0] ? r[0] - index : index >= r[1] ? index - r[1] + 1 : 0; }
    ordered.sort(function (a, b) { return away(a) - away(b); });
    runs.length = 0;
    ordered.forEach(function (r) {
      for (var i = r[0]; i < r[1]; i++) {
        if (!images.has(urlFor(i)) && !held.has(urlFor(i))) {
          runs.push({ study: state.study.study_uid, series: state.series.series_uid,
                      preset: windowParam(), first: r[0] + 1, count: r[1] - r[0] });
          return;
        }
      }
    });
    // The order asked in, nearest first (read by the tests): "first+count,…".
    canvas.dataset.runs = runs.map(function (r) { return r.first + "+" + r.count; }).join(",");
    // The slice on screen first: the runs wait until it has arrived (or failed). (Not
    // waiting for the page's own first slice was measured: the runs then slowed it.)
    var shown = images.get(urlFor(index));
    if (shown && !shown.complete) {
      shown.addEventListener("load", pumpRuns, { once: true });
      shown.addEventListener("error", pumpRuns, { once: true });
    } else pumpRuns();
  }

  function go(delta) {
    var n = state.series.instances.length;
    var next = Math.min(n - 1, Math.max(0, state.index + delta));
    if (next !== state.index) { state.index = next; show(); }
  }

  function choose(study, series, index) {
    state.study = study; state.series = series;
    state.index = index === undefined ? Math.floor(series.instances.length / 2) : index;
    state.zoom = 1; state.panX = 0; state.panY = 0;
    document.getElementById("study-line").textContent = (study.description || "Study") + " · " +
      (study.study_date || "date not given") + " · " + (series.description || series.modality) +
      " · " + study.hospital_name + " PACS";
    var link = document.getElementById("full-viewer");
    if (study.viewer_url) { link.href = study.viewer_url; link.hidden = false; } else link.hidden = true;
    document.querySelectorAll("#series-strip button").forEach(function (b) {
      b.setAttribute("aria-current", b.dataset.series === series.series_uid ? "true" : "false");
    });
    show();
    preload();
  }

  function setPreset(name) {
    state.preset = name;
    state.window = null;
    presetSelect.value = name;
    show();
    preload();
  }

  function isFlagged(sop) { return flagged.some(function (k) { return k.sop_uid === sop; }); }
  function renderKeys() {
    var list = document.getElementById("key-list");
    list.textContent = "";
    flagged.forEach(function (k) { var li = document.createElement("li"); li.textContent = k.label; list.appendChild(li); });
    if (!flagged.length) { var li = document.createElement("li"); li.className = "muted"; li.textContent = "None flagged."; list.appendChild(li); }
  }
  if (keyButton) keyButton.addEventListener("click", function () {
    var body = { study_uid: state.study.study_uid, series_uid: state.series.series_uid,
                 sop_uid: current().sop_uid, frame: 1, preset: state.preset };
    fetch(data.key_url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": data.csrf },
      body: JSON.stringify(body) }).then(function (r) { return r.json(); }).then(function (answer) {
        if (answer.key_images) { flagged = answer.key_images; renderKeys(); show(); }
      });
  });

  // Series strip: the middle slice of each series as its thumbnail.
  var strip = document.getElementById("series-strip");
  data.studies.forEach(function (study) {
    study.series.forEach(function (series) {
      if (!series.instances.length) return;
      var li = document.createElement("li");
      var b = document.createElement("button");
      b.type = "button"; b.dataset.series = series.series_uid;
      var img = document.createElement("img");
      img.alt = ""; img.loading = "lazy";
      img.dataset.src = frameUrl(study.study_uid, series.instances[Math.floor(series.instances.length / 2)].sop_uid,
                         series.default_preset, "jpeg");
      b.appendChild(img);
      b.appendChild(document.createTextNode((series.description || series.modality || "Series") +
                                            " (" + series.instances.length + ")"));
      b.addEventListener("click", function () { state.preset = series.default_preset; state.window = null; presetSelect.value = state.preset; choose(study, series); });
      li.appendChild(b); strip.appendChild(li);
    });
  });

  // Input: wheel, keys, touch, mouse.
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    if (e.ctrlKey) { zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15); return; }
    go(e.deltaY > 0 ? 1 : -1);
  }, { passive: false });
  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA" || e.target.tagName === "SELECT") return;
    var keys = { ArrowDown: 1, ArrowRight: 1, j: 1, ArrowUp: -1, ArrowLeft: -1, k: -1,
                 PageDown: 10, PageUp: -10 };
    if (keys[e.key] !== undefined) { e.preventDefault(); go(keys[e.key]); }
    else if (e.key === "Home") { go(-1e6); } else if (e.key === "End") { go(1e6); }
    else if (e.key === "+" || e.key === "=") { zoomBy(1.25); } else if (e.key === "-") { zoomBy(0.8); }
    else if (e.key === "0") { reset(); }
    else if (/^[1-8]$/.test(e.key)) { setPreset(presetSelect.options[Number(e.key) - 1].value); }
  });
  function zoomBy(f) { state.zoom = Math.min(8, Math.max(1, state.zoom * f)); if (state.zoom === 1) { state.panX = state.panY = 0; } show(); }
  function reset() { state.zoom = 1; state.panX = 0; state.panY = 0; show(); }

  var touch = null;
  function distance(t) { return Math.hypot(t[0].clientX - t[1].clientX, t[0].clientY - t[1].clientY); }
  function middle(t) { return { x: (t[0].clientX + t[1].clientX) / 2, y: (t[0].clientY + t[1].clientY) / 2 }; }
  canvas.addEventListener("touchstart", function (e) {
    e.preventDefault();
    var t = e.touches;
    touch = t.length === 1 ? { y: t[0].clientY, moved: 0 }
      : { d: distance(t), zoom: state.zoom, m: middle(t), panX: state.panX, panY: state.panY };
  }, { passive: false });
  canvas.addEventListener("touchmove", function (e) {
    e.preventDefault();
    if (!touch || state.windowing) return;  // the pointer handlers below have the drag
    var t = e.touches;
    if (t.length === 1 && touch.y !== undefined) {
      var step = Math.max(8, canvas.getBoundingClientRect().height / Math.max(30, state.series.instances.length));
      var dy = t[0].clientY - touch.y;
      var slices = Math.trunc(dy / step);
      if (slices) { go(-slices); touch.y += slices * step; }
    } else if (t.length === 2 && touch.d) {
      var ratio = window.devicePixelRatio || 1, m = middle(t);
      state.zoom = Math.min(8, Math.max(1, touch.zoom * distance(t) / touch.d));
      state.panX = touch.panX + (m.x - touch.m.x) * ratio;
      state.panY = touch.panY + (m.y - touch.m.y) * ratio;
      show();
    }
  }, { passive: false });
  canvas.addEventListener("touchend", function () { touch = null; });

  var drag = null;
  canvas.addEventListener("mousedown", function (e) {
    if (state.windowing) return;
    drag = { x: e.clientX, y: e.clientY, panX: state.panX, panY: state.panY };
  });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    var ratio = window.devicePixelRatio || 1;
    if (state.zoom > 1) {
      state.panX = drag.panX + (e.clientX - drag.x) * ratio;
      state.panY = drag.panY + (e.clientY - drag.y) * ratio;
      show();
    } else {  // not zoomed: dragging scrolls, as a finger does
      var slices = Math.trunc((e.clientY - drag.y) / 10);
      if (slices) { go(-slices); drag.y += slices * 10; }
    }
  });

  // Window/level by drag: pointer events, so a mouse, a pen and a finger all work.
  var leveling = null, repaint = null;
  function startWindow() {
    var preset = data.preset_windows[state.preset] ||
      (String(state.preset).indexOf(",") > 0 ? String(state.preset).split(",").map(Number) : [40, 80]);
    return state.window || { center: preset[0], width: preset[1] };
  }
  canvas.addEventListener("pointerdown", function (e) {
    if (!state.windowing || !state.series) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    var from = startWindow();
    leveling = { id: e.pointerId, x: e.clientX, y: e.clientY, center: from.center, width: from.width };
  });
  canvas.addEventListener("pointermove", function (e) {
    if (!leveling || e.pointerId !== leveling.id) return;
    // A step per CSS pixel in proportion to the width: fine for a stroke window,
    // quick for bone.
    var step = Math.max(0.5, leveling.width / 200);
    state.window = { width: Math.max(1, leveling.width + (e.clientX - leveling.x) * step),
                     center: leveling.center - (e.clientY - leveling.y) * step };
    if (!repaint) repaint = setTimeout(function () { repaint = null; show(); }, 60);
  });
  function endWindow(e) {
    if (!leveling || e.pointerId !== leveling.id) return;
    leveling = null;
    clearTimeout(repaint); repaint = null;
    show();
    preload();
  }
  canvas.addEventListener("pointerup", endWindow);
  canvas.addEventListener("pointercancel", endWindow);
  wlButton.addEventListener("click", function () {
    state.windowing = !state.windowing;
    wlButton.setAttribute("aria-pressed", state.windowing ? "true" : "false");
  });
  slider.addEventListener("input", function () {
    var next = Number(slider.value) - 1;
    if (state.series && next !== state.index) { state.index = next; show(); }
  });

  presetSelect.addEventListener("change", function () { setPreset(presetSelect.value); });
  document.getElementById("viewer-prev").addEventListener("click", function () { go(-1); });
  document.getElementById("viewer-next").addEventListener("click", function () { go(1); });
  document.getElementById("viewer-reset").addEventListener("click", reset);
  document.getElementById("viewer-retry").addEventListener("click", function () {
    failed.clear(); show(); preload();
  });
  window.addEventListener("resize", resize);

  var firstStudy = data.studies.find(function (s) { return s.series.some(function (x) { return x.instances.length; }); });
  if (!firstStudy) return;
  var firstSeries = firstStudy.series.find(function (x) { return x.instances.length; });
  state.preset = data.window || firstSeries.default_preset;  // ?window=center,width
  presetSelect.value = state.preset;
  renderKeys();
  var box = canvas.getBoundingClientRect(), ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(box.width * ratio));
  canvas.height = Math.max(1, Math.round(box.height * ratio));
  var openingUrl = opening && opening.dataset.frame;
  var arrivedEarly = Boolean(opening && opening.complete && opening.naturalWidth);
  if (opening && opening.complete && !opening.naturalWidth) {
    opening.remove(); opening = null;  // it failed: asked again below, and explained
  } else if (opening) {
    images.set(openingUrl, opening);
    if (!opening.complete) watch(opening, openingUrl);
  }
  choose(firstStudy, firstSeries);  // draws it, if it is here: `opening` is then null
  if (arrivedEarly) counted(openingUrl);
  // When the page's own first slice was on screen (read by the benchmark): the browser's
  // Element Timing of it, beside firstPaintSinceNavigationMs for the canvas.
  if (openingUrl && window.PerformanceObserver &&
      (PerformanceObserver.supportedEntryTypes || []).indexOf("element") >= 0) {
    new PerformanceObserver(function (list) {
      list.getEntries().forEach(function (e) {
        if (e.identifier === "first-slice" && !canvas.dataset.firstSliceShownMs) {
          canvas.dataset.firstSliceShownMs = String(Math.round(e.renderTime || e.loadTime));
        }
      });
    }).observe({ type: "element", buffered: true });
  }
})();
