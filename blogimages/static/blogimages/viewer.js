/* blogimages' image viewer (review page, playground, gallery; Django admin, Wagtail, django CMS).
 *
 * Clicking a candidate's image ([data-bi-view]) or its "View" / "Refine…" button
 * ([data-bi-open]) opens a modal dialog (the page's <template id="bi-viewer-template">):
 * the image large, zoom (wheel, buttons, + - 0 1), pan (drag, scroll bars, Shift+arrows),
 * previous/next across the page's images (← →), Esc closes and focus returns where it was.
 * Approve and reject click the card's own buttons, so the page's form (request key,
 * disabled buttons, comment rule) and the server's messages apply unchanged. Pick two or
 * more images ("compare") to see them side by side at one pixel scale, zoomed and moved
 * together. The refine panel sends a refine (instruction, optional mask painted on the
 * image: a PNG the size of the source, white = change), variations, an upscale or a new
 * prompt with the image as reference to <results>/viewer/<id>/refine/; errors appear in
 * the dialog as sentences. "Send to a section…" attaches a playground image to a post's
 * section. When the last image of a request finishes, a notice says so
 * ("4 of 4 candidates finished for section “Harbour”").
 */
(function () {
  "use strict";

  var MIN_SCALE = 0.02;
  var MAX_SCALE = 16;
  var STEP = 1.25;

  var dialog = null;
  var state = {
    items: [],
    index: 0,
    mode: "single",
    scale: 1,
    panes: [],
    returnFocus: null,
    mask: null, // {canvas, ctx, painted}
    paint: false,
    erase: false,
    requestKey: "",
    options: null,
  };

  // --- helpers ------------------------------------------------------------------------------

  function $(root, selector) {
    return root.querySelector(selector);
  }

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID().replace(/-/g, "");
    return String(Date.now()) + String(Math.random()).slice(2);
  }

  function resultsUrl() {
    var url = (dialog && dialog.dataset.resultsUrl) || "";
    return url.charAt(url.length - 1) === "/" ? url : url + "/";
  }

  function endpoint(path) {
    return resultsUrl() + "viewer/" + path;
  }

  function request(url, options) {
    options = options || {};
    var headers = { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" };
    if (options.method === "POST") headers["X-CSRFToken"] = dialog.dataset.csrf || "";
    return fetch(url, { method: options.method || "GET", body: options.body, credentials: "same-origin", headers: headers })
      .then(function (resp) {
        return resp.json().then(
          function (data) { return { ok: resp.ok, status: resp.status, data: data }; },
          function () { return { ok: false, status: resp.status, data: { error: "The server answered HTTP " + resp.status + "." } }; }
        );
      })
      .catch(function () {
        return { ok: false, status: 0, data: { error: "The server could not be reached; check the connection and try again." } };
      });
  }

  function say(el, text, kind) {
    if (!el) return;
    el.textContent = text || "";
    el.classList.toggle("is-error", kind === "error");
    el.classList.toggle("is-ok", kind === "ok");
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function ensureDialog() {
    if (dialog) return dialog;
    var template = document.getElementById("bi-viewer-template");
    if (!template) return null;
    document.body.appendChild(template.content.cloneNode(true));
    dialog = document.getElementById("bi-viewer");
    wireDialog();
    wireSend();
    return dialog;
  }

  // --- the review page's light cards: tools filled from the page's template -------------------

  // A card rendered with tools_lazy carries only <span data-bi-tools data-bi-fill="vrs" ...>;
  // the buttons come from <template id="bi-tools-template"> (once per page), and the span gets
  // the data-* the rest of this script reads (the card's id and status, the image's URL from the
  // thumbnail link, its size), so 300 cards do not each repeat them in the HTML.
  function fillTools(root) {
    var template = document.getElementById("bi-tools-template");
    if (!template) return;
    (root || document).querySelectorAll("[data-bi-tools][data-bi-fill]").forEach(function (el) {
      var card = el.closest(".bi-card");
      if (!card) return;
      var flags = el.dataset.biFill;
      var id = card.dataset.result;
      el.removeAttribute("data-bi-fill");
      el.dataset.result = id;
      el.dataset.status = card.dataset.status;
      var reuse = document.getElementById("bi-reuse-template");
      var facts = card.querySelector(".bi-facts");
      if (flags.indexOf("u") >= 0 && reuse && facts) {
        var more = reuse.content.cloneNode(true);
        var a = more.querySelector("a");
        a.setAttribute("href", a.getAttribute("href") + encodeURIComponent(id));
        facts.appendChild(more);
      }
      var link = card.querySelector("a[data-bi-view]");
      if (!link || flags.indexOf("v") < 0) return;
      el.dataset.imageUrl = link.getAttribute("href");
      if (!el.dataset.label) {
        // "#12 · provider · model · seed · size": the card's facts (not its links).
        var facts = [];
        card.querySelectorAll(".bi-facts dd").forEach(function (dd) {
          if (!dd.querySelector("a") && dd.textContent.trim()) facts.push(dd.textContent.trim());
        });
        el.dataset.label = ["#" + id].concat(facts).join(" · ");
      }
      var size = /(\d+)×(\d+)/.exec(facts ? facts.textContent : "");
      if (size) {
        el.dataset.width = size[1];
        el.dataset.height = size[2];
      }
      var tools = template.content.cloneNode(true);
      tools.querySelectorAll("[data-bi-only]").forEach(function (node) {
        if (flags.indexOf(node.dataset.biOnly) < 0) node.remove();
        else node.removeAttribute("data-bi-only");
      });
      tools.querySelectorAll("[data-bi-open]").forEach(function (button) {
        button.dataset.biOpen = id;
        button.setAttribute("aria-label", button.dataset.biLabel.replace("%s", id));
        button.removeAttribute("data-bi-label");
      });
      tools.querySelectorAll("[data-bi-send]").forEach(function (button) { button.dataset.biSend = id; });
      tools.querySelectorAll("input[data-bi-compare]").forEach(function (box) { box.value = id; });
      el.appendChild(tools);
      el.hidden = false;
    });
  }

  // --- the page's images ----------------------------------------------------------------------

  function tools() {
    // Each image once, in page order; a lineage row repeating a card's tools is skipped.
    var seen = {};
    var found = [];
    document.querySelectorAll("[data-bi-tools][data-image-url]").forEach(function (el) {
      if (el.closest("dialog") || seen[el.dataset.result]) return;
      seen[el.dataset.result] = true;
      found.push(el);
    });
    document.querySelectorAll(".bi-card[data-result][data-image-url]").forEach(function (card) {
      if (seen[card.dataset.result]) return; // a card without the tools include still opens
      seen[card.dataset.result] = true;
      found.push(card);
    });
    return found;
  }

  function itemFrom(el) {
    var id = el.dataset.result;
    return {
      id: id,
      url: el.dataset.imageUrl,
      width: parseInt(el.dataset.width, 10) || 0,
      height: parseInt(el.dataset.height, 10) || 0,
      label: el.dataset.label || "#" + id,
      el: el,
    };
  }

  function cardOf(id) {
    return document.querySelector('.bi-card[data-result="' + id + '"]');
  }

  function cardButton(id, op) {
    var buttons = document.querySelectorAll('button[name="do"][value="' + op + ":" + id + '"]');
    for (var i = 0; i < buttons.length; i++) {
      if (!buttons[i].closest("dialog") && !buttons[i].disabled) return buttons[i];
    }
    return null;
  }

  function mayRefine(item) {
    var el = document.querySelector('[data-bi-tools][data-result="' + item.id + '"] [data-bi-mode="refine"]');
    return !!el;
  }

  // --- opening, closing, moving -----------------------------------------------------------------

  function open(id, mode) {
    if (!ensureDialog()) return;
    state.items = tools().map(itemFrom);
    var index = state.items.findIndex(function (item) { return item.id === String(id); });
    if (index < 0) return;
    state.index = index;
    state.mode = "single";
    state.returnFocus = document.activeElement;
    state.requestKey = newKey();
    if (!dialog.open) dialog.showModal();
    show();
    if (mode === "refine") {
      var box = $(dialog, "[data-bi-refine-box]");
      if (!box.hidden) {
        box.open = true;
        $(dialog, "#bi-refine-instruction").focus();
        return;
      }
    }
    focusStage();
  }

  function openCompare(ids) {
    if (!ensureDialog()) return;
    var all = tools().map(itemFrom);
    state.items = all.filter(function (item) { return ids.indexOf(item.id) >= 0; });
    if (state.items.length < 2) return;
    state.index = 0;
    state.mode = "compare";
    state.returnFocus = document.activeElement;
    if (!dialog.open) dialog.showModal();
    show();
    focusStage();
  }

  function focusStage() {
    var pane = state.panes[0] && state.panes[0].pane;
    if (pane) pane.focus({ preventScroll: true });
  }

  function close() {
    if (dialog && dialog.open) dialog.close();
  }

  function onClosed() {
    setPaint(false, false);
    $(dialog, "[data-bi-stage]").innerHTML = "";
    state.panes = [];
    state.mask = null;
    var back = state.returnFocus;
    if (!back || !document.contains(back)) {
      var item = state.items[state.index];
      back = item && document.querySelector('[data-bi-tools][data-result="' + item.id + '"] [data-bi-open], [data-bi-view="' + item.id + '"]');
    }
    if (back && back.focus) back.focus();
  }

  function step(delta) {
    if (state.mode !== "single" || state.items.length < 2) return;
    state.index = (state.index + delta + state.items.length) % state.items.length;
    state.requestKey = newKey();
    show();
  }

  // --- rendering ----------------------------------------------------------------------------

  function show() {
    var stage = $(dialog, "[data-bi-stage]");
    var refocus = stage.contains(document.activeElement) || !dialog.contains(document.activeElement);
    stage.innerHTML = "";
    state.panes = [];
    state.mask = null;
    setPaint(false, false);
    dialog.classList.toggle("is-compare", state.mode === "compare");
    var items = state.mode === "compare" ? state.items : [state.items[state.index]];
    var loads = items.map(function (item) { return addPane(stage, item, state.mode === "compare"); });
    var single = state.mode === "single";
    var item = state.items[state.index];
    $(dialog, "#bi-viewer-title").textContent = single ? item.label : "Compare " + items.length + " images at one scale";
    $(dialog, "[data-bi-pos]").textContent = single ? state.index + 1 + " / " + state.items.length : "";
    dialog.querySelectorAll('[data-bi-act="prev"], [data-bi-act="next"]').forEach(function (b) {
      b.disabled = !single || state.items.length < 2;
    });
    say($(dialog, "[data-bi-msg]"), "");
    if (single) {
      showDecision(item);
      showRefine(item);
    }
    if (refocus) focusStage(); // the image the editor was on is gone: keep the keys in the viewer
    Promise.all(loads).then(function () {
      fit();
      if (single && !$(dialog, "[data-bi-refine-box]").hidden) attachMask(state.panes[0], item);
    });
  }

  function addPane(stage, item, caption) {
    var pane = document.createElement("div");
    pane.className = "bi-viewer__pane is-grab";
    pane.tabIndex = 0;
    pane.setAttribute("role", "group");
    pane.setAttribute("aria-label", item.label);
    pane.dataset.result = item.id;
    var frame = document.createElement("div");
    frame.className = "bi-viewer__frame";
    var img = document.createElement("img");
    img.alt = item.label;
    img.draggable = false;
    frame.appendChild(img);
    if (caption) {
      var label = document.createElement("span");
      label.className = "bi-viewer__caption";
      label.textContent = item.label;
      pane.appendChild(label);
    }
    pane.appendChild(frame);
    stage.appendChild(pane);
    var entry = { pane: pane, frame: frame, img: img, item: item };
    state.panes.push(entry);
    wirePane(entry);
    return new Promise(function (resolve) {
      img.onload = function () {
        if (!item.width || !item.height) {
          item.width = img.naturalWidth;
          item.height = img.naturalHeight;
        }
        resolve();
      };
      img.onerror = function () {
        say($(dialog, "[data-bi-msg]"), "Image " + item.label + " could not be loaded.", "error");
        item.width = item.width || 1;
        item.height = item.height || 1;
        resolve();
      };
      img.src = item.url;
    });
  }

  function fitScale() {
    // One scale for every pane: the largest at which each image fits its pane, at most 1:1.
    var scale = 1;
    state.panes.forEach(function (p) {
      var w = p.pane.clientWidth - 8;
      var h = p.pane.clientHeight - 8;
      if (p.item.width && p.item.height && w > 0 && h > 0) {
        scale = Math.min(scale, w / p.item.width, h / p.item.height);
      }
    });
    return clamp(scale, MIN_SCALE, MAX_SCALE);
  }

  function applyScale() {
    state.panes.forEach(function (p) {
      p.frame.style.width = Math.max(1, Math.round(p.item.width * state.scale)) + "px";
      p.frame.style.height = Math.max(1, Math.round(p.item.height * state.scale)) + "px";
    });
    var text = Math.round(state.scale * 1000) / 10 + "%";
    $(dialog, "[data-bi-scale]").textContent = text;
    dialog.dataset.scale = String(state.scale);
  }

  function fit() {
    state.scale = fitScale();
    applyScale();
  }

  // Zoom about a point of the first pane (its centre by default), keeping the image point
  // under it in place in every pane: the panes stay in step.
  function zoomTo(scale, anchor, source) {
    if (!state.panes.length) return;
    var lead = source || state.panes[0];
    var ax = anchor ? anchor.x : lead.pane.clientWidth / 2;
    var ay = anchor ? anchor.y : lead.pane.clientHeight / 2;
    var sx = (lead.pane.scrollLeft + ax - lead.frame.offsetLeft) / state.scale;
    var sy = (lead.pane.scrollTop + ay - lead.frame.offsetTop) / state.scale;
    state.scale = clamp(scale, MIN_SCALE, MAX_SCALE);
    applyScale();
    state.panes.forEach(function (p) {
      setScroll(p, sx * state.scale + p.frame.offsetLeft - ax, sy * state.scale + p.frame.offsetTop - ay);
    });
  }

  // A scroll made here is remembered, so its scroll event is not taken for the editor's own.
  function setScroll(p, left, top) {
    p.pane.scrollLeft = left;
    p.pane.scrollTop = top;
    p.expect = { left: p.pane.scrollLeft, top: p.pane.scrollTop };
  }

  function onScroll(entry) {
    var e = entry.expect;
    entry.expect = null;
    if (e && Math.abs(entry.pane.scrollLeft - e.left) < 1 && Math.abs(entry.pane.scrollTop - e.top) < 1) return;
    syncFrom(entry);
  }

  function pan(dx, dy) {
    var lead = state.panes[0];
    if (!lead) return;
    lead.pane.scrollLeft += dx;
    lead.pane.scrollTop += dy;
    syncFrom(lead);
  }

  function syncFrom(source) {
    if (state.panes.length < 2) return;
    var sx = (source.pane.scrollLeft - source.frame.offsetLeft) / state.scale;
    var sy = (source.pane.scrollTop - source.frame.offsetTop) / state.scale;
    state.panes.forEach(function (p) {
      if (p !== source) setScroll(p, sx * state.scale + p.frame.offsetLeft, sy * state.scale + p.frame.offsetTop);
    });
  }

  function wirePane(entry) {
    var pane = entry.pane;
    pane.addEventListener("wheel", function (event) {
      event.preventDefault();
      var rect = pane.getBoundingClientRect();
      var factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
      zoomTo(state.scale * factor, { x: event.clientX - rect.left, y: event.clientY - rect.top }, entry);
    }, { passive: false });
    pane.addEventListener("scroll", function () { onScroll(entry); });
    var drag = null;
    pane.addEventListener("pointerdown", function (event) {
      if (state.paint || event.button !== 0) return;
      drag = { x: event.clientX, y: event.clientY, left: pane.scrollLeft, top: pane.scrollTop };
      pane.setPointerCapture(event.pointerId);
      pane.classList.add("is-grabbing");
    });
    pane.addEventListener("pointermove", function (event) {
      if (!drag) return;
      pane.scrollLeft = drag.left - (event.clientX - drag.x);
      pane.scrollTop = drag.top - (event.clientY - drag.y);
    });
    function stop() {
      drag = null;
      pane.classList.remove("is-grabbing");
    }
    pane.addEventListener("pointerup", stop);
    pane.addEventListener("pointercancel", stop);
  }

  // --- approve / reject through the card's own buttons ------------------------------------------------

  function showDecision(item) {
    var box = $(dialog, "[data-bi-decide]");
    var approve = cardButton(item.id, "approve");
    var reject = cardButton(item.id, "reject");
    $(dialog, '[data-bi-act="approve"]').hidden = !approve;
    $(dialog, '[data-bi-act="reject"]').hidden = !reject;
    box.hidden = !approve && !reject;
    if (approve) $(dialog, '[data-bi-act="approve"]').textContent = approve.textContent;
  }

  function decide(op) {
    var item = state.items[state.index];
    var button = cardButton(item.id, op);
    var message = $(dialog, "[data-bi-msg]");
    if (!button) {
      say(message, "This image can no longer be " + (op === "approve" ? "approved" : "rejected") + " from here; reload the page.", "error");
      return;
    }
    var comment = $(dialog, "[data-bi-comment]").value.trim();
    var area = button.form && button.form.querySelector("textarea[name=comment]");
    if (op === "reject" && !comment && !(area && area.value.trim())) {
      say(message, "Say why: a comment is required to reject.", "error");
      $(dialog, "[data-bi-comment]").focus();
      return;
    }
    if (area && comment) area.value = comment;
    dialog.querySelectorAll('[data-bi-act="approve"], [data-bi-act="reject"]').forEach(function (b) {
      b.disabled = true;
      b.setAttribute("aria-busy", "true");
    });
    say(message, op === "approve" ? "Approving…" : "Rejecting…");
    // The page's own form sends it (request key, one-request guard, messages where the editor acted).
    state.returnFocus = button;
    close();
    button.click();
  }

  // --- refine -----------------------------------------------------------------------------------

  function showRefine(item) {
    var box = $(dialog, "[data-bi-refine-box]");
    var allowed = mayRefine(item);
    box.hidden = !allowed;
    say($(dialog, "[data-bi-refine-msg]"), "");
    if (!allowed) return;
    loadOptions(item, $(dialog, "[data-bi-provider]").value); // the provider chosen stays chosen
    opChanged();
  }

  function loadOptions(item, provider) {
    var url = endpoint(item.id + "/options/") + (provider ? "?provider=" + encodeURIComponent(provider) : "");
    var form = $(dialog, "[data-bi-refine]");
    return request(url).then(function (answer) {
      if (state.items[state.index] !== item) return;
      if (!answer.ok) {
        state.options = null;
        say($(dialog, "[data-bi-refine-msg]"), answer.data.error, "error");
        return;
      }
      var options = answer.data;
      state.options = options;
      var select = $(form, "[data-bi-provider]");
      if (select.options.length <= 1) {
        (options.providers || []).forEach(function (alias) {
          var option = document.createElement("option");
          option.value = option.textContent = alias;
          select.appendChild(option);
        });
      }
      var why = [];
      form.querySelectorAll('input[name="operation"]').forEach(function (radio) {
        var refusal = (options.operations || {})[radio.value];
        var refused = refusal === undefined ? false : !!refusal;
        radio.disabled = refused;
        radio.closest("label").classList.toggle("is-refused", refused);
        radio.closest("label").title = refused ? refusal : "";
        if (refused) why.push(refusal);
      });
      $(form, "[data-bi-why]").textContent = why.join(" ");
      var checked = $(form, 'input[name="operation"]:checked');
      if (!checked || checked.disabled) {
        var first = $(form, 'input[name="operation"]:not(:disabled)');
        if (first) first.checked = true;
      }
      $(form, '[data-bi-cap="strength"]').hidden = !options.strength;
      var fidelity = $(form, "#bi-refine-fidelity");
      fidelity.length = 1;
      (options.fidelity || []).forEach(function (value) {
        var option = document.createElement("option");
        option.value = option.textContent = value;
        fidelity.appendChild(option);
      });
      $(form, '[data-bi-cap="fidelity"]').hidden = !(options.fidelity && options.fidelity.length);
      var formatOption = $(form, "[data-bi-format-option]");
      if (options.format) formatOption.textContent = "the format's size (" + options.format[0] + "×" + options.format[1] + ")";
      opChanged();
    });
  }

  function operation() {
    var checked = $(dialog, '[data-bi-refine] input[name="operation"]:checked');
    return checked ? checked.value : "refine";
  }

  function opChanged() {
    var op = operation();
    var form = $(dialog, "[data-bi-refine]");
    form.querySelectorAll("[data-bi-for]").forEach(function (row) {
      row.hidden = row.dataset.biFor.split(" ").indexOf(op) < 0;
    });
    var label = $(form, "[data-bi-instruction-label]");
    label.textContent = op === "reference" ? label.dataset.reference : label.dataset.refine;
    if (op !== "refine") setPaint(false, false);
  }

  function attachMask(entry, item) {
    if (state.mask || !entry || !item.width || !item.height) return;
    var canvas = document.createElement("canvas");
    canvas.width = item.width; // the source's own pixels: the mask is sent at this size
    canvas.height = item.height;
    canvas.setAttribute("aria-hidden", "true");
    entry.frame.appendChild(canvas);
    var ctx = canvas.getContext("2d");
    state.mask = { canvas: canvas, ctx: ctx, painted: false };
    var last = null;
    function point(event) {
      var rect = canvas.getBoundingClientRect();
      return {
        x: ((event.clientX - rect.left) * canvas.width) / rect.width,
        y: ((event.clientY - rect.top) * canvas.height) / rect.height,
        k: canvas.width / rect.width,
      };
    }
    function draw(from, to) {
      var brush = parseInt($(dialog, "[data-bi-brush]").value, 10) || 40;
      ctx.globalCompositeOperation = state.erase ? "destination-out" : "source-over";
      ctx.strokeStyle = "#ff2d55";
      ctx.fillStyle = "#ff2d55";
      ctx.lineWidth = brush * to.k;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.beginPath();
      ctx.moveTo(from.x, from.y);
      ctx.lineTo(to.x + 0.01, to.y + 0.01);
      ctx.stroke();
      if (!state.erase) state.mask.painted = true;
      maskState();
    }
    canvas.addEventListener("pointerdown", function (event) {
      if (!state.paint) return;
      event.preventDefault();
      event.stopPropagation();
      canvas.setPointerCapture(event.pointerId);
      last = point(event);
      draw(last, last);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!last) return;
      var next = point(event);
      draw(last, next);
      last = next;
    });
    function end() { last = null; }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  function maskState() {
    var text = state.mask && state.mask.painted
      ? "Mask painted: only the painted area may change."
      : "No mask: the whole image may change.";
    $(dialog, "[data-bi-mask-state]").textContent = text;
  }

  function setPaint(paint, erase) {
    state.paint = paint;
    state.erase = paint && erase;
    if (!dialog) return;
    dialog.classList.toggle("is-painting", paint);
    $(dialog, '[data-bi-act="paint"]').setAttribute("aria-pressed", String(paint && !erase));
    $(dialog, '[data-bi-act="erase"]').setAttribute("aria-pressed", String(paint && erase));
    state.panes.forEach(function (p) { p.pane.classList.toggle("is-grab", !paint); });
  }

  function clearMask() {
    if (!state.mask) return;
    state.mask.ctx.clearRect(0, 0, state.mask.canvas.width, state.mask.canvas.height);
    state.mask.painted = false;
    maskState();
  }

  // The mask as sent: the source's size, white where painted, black elsewhere.
  function maskBlob() {
    var source = state.mask.canvas;
    var w = source.width;
    var h = source.height;
    var paint = document.createElement("canvas");
    paint.width = w;
    paint.height = h;
    var p = paint.getContext("2d");
    p.drawImage(source, 0, 0);
    p.globalCompositeOperation = "source-in";
    p.fillStyle = "#fff";
    p.fillRect(0, 0, w, h);
    var out = document.createElement("canvas");
    out.width = w;
    out.height = h;
    var o = out.getContext("2d");
    o.fillStyle = "#000";
    o.fillRect(0, 0, w, h);
    o.drawImage(paint, 0, 0);
    return new Promise(function (resolve) { out.toBlob(resolve, "image/png"); });
  }

  function submitRefine(event) {
    event.preventDefault();
    var form = event.target;
    var item = state.items[state.index];
    var message = $(form, "[data-bi-refine-msg]");
    var button = $(form, "[data-bi-refine-submit]");
    if (button.disabled) return;
    var op = operation();
    var body = new FormData(form);
    body.set("operation", op);
    if (op !== "refine" && op !== "reference") body.delete("instruction");
    if (op !== "upscale") body.delete("scale");
    if ($(form, '[data-bi-cap="strength"]').hidden || !body.get("strength")) body.delete("strength");
    if ($(form, '[data-bi-cap="fidelity"]').hidden) body.delete("fidelity");
    body.set("request_key", state.requestKey);
    var withMask = op === "refine" && state.mask && state.mask.painted ? maskBlob() : Promise.resolve(null);
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    say(message, "Sending…");
    withMask
      .then(function (blob) {
        if (blob) body.append("mask", blob, "mask.png");
        return request(endpoint(item.id + "/refine/"), { method: "POST", body: body });
      })
      .then(function (answer) {
        if (!answer.ok) {
          state.requestKey = newKey(); // nothing was made: a corrected form is a new request
          say(message, answer.data.error || "The request was refused.", "error");
          button.disabled = false;
          button.removeAttribute("aria-busy");
          return;
        }
        say(message, answer.data.message, "ok");
        landOn(answer.data.results || []);
      });
  }

  // After a refine was queued: the page that shows the new image, with the server's message.
  function landOn(results) {
    var first = results[0] || {};
    var target;
    if (document.querySelector('[data-bi-live="playground"], .bi-playground') && first.group) {
      target = window.location.pathname + "?group=" + encodeURIComponent(first.group);
    } else if (first.section) {
      target = window.location.pathname + window.location.search + "#bi-section-" + encodeURIComponent(first.section);
    } else {
      target = window.location.pathname + window.location.search;
    }
    window.setTimeout(function () {
      var here = window.location.pathname + window.location.search;
      if (target.split("#")[0] === here) {
        if (target.indexOf("#") >= 0) window.location.hash = target.split("#")[1];
        window.location.reload();
      } else {
        window.location.assign(target);
      }
    }, 600);
  }

  // --- keyboard, focus trap, buttons --------------------------------------------------------------

  function focusables() {
    return Array.prototype.filter.call(
      dialog.querySelectorAll('button, [href], input, select, textarea, summary, [tabindex]:not([tabindex="-1"])'),
      function (el) {
        var closed = el.closest("details:not([open])");
        if (closed && !(el.tagName === "SUMMARY" && el.parentElement === closed)) return false;
        return !el.disabled && !el.closest("[hidden]") && el.getClientRects().length > 0;
      }
    );
  }

  function onKey(event) {
    if (event.key === "Tab") {
      // Focus stays in the dialog: Tab and Shift+Tab go round its controls.
      var list = focusables();
      if (!list.length) return;
      event.preventDefault();
      var at = list.indexOf(document.activeElement);
      var next = event.shiftKey ? (at <= 0 ? list.length - 1 : at - 1) : (at + 1) % list.length;
      list[next].focus();
      return;
    }
    if (event.key === "Escape") return; // the dialog's own cancel closes it
    if (typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    var moveBy = state.panes[0] ? state.panes[0].pane.clientWidth / 10 : 40;
    var handled = true;
    if (event.shiftKey && event.key === "ArrowLeft") pan(-moveBy, 0);
    else if (event.shiftKey && event.key === "ArrowRight") pan(moveBy, 0);
    else if (event.shiftKey && event.key === "ArrowUp") pan(0, -moveBy);
    else if (event.shiftKey && event.key === "ArrowDown") pan(0, moveBy);
    else if (event.key === "ArrowRight") step(1);
    else if (event.key === "ArrowLeft") step(-1);
    else if (event.key === "+" || event.key === "=") zoomTo(state.scale * STEP);
    else if (event.key === "-" || event.key === "_") zoomTo(state.scale / STEP);
    else if (event.key === "0") fit();
    else if (event.key === "1") zoomTo(1);
    else handled = false;
    if (handled) event.preventDefault();
  }

  function onAct(event) {
    var button = event.target.closest("[data-bi-act]");
    if (!button || !dialog.contains(button)) return;
    var act = button.dataset.biAct;
    if (act === "close") close();
    else if (act === "prev") step(-1);
    else if (act === "next") step(1);
    else if (act === "zoom-in") zoomTo(state.scale * STEP);
    else if (act === "zoom-out") zoomTo(state.scale / STEP);
    else if (act === "fit") fit();
    else if (act === "actual") zoomTo(1);
    else if (act === "approve" || act === "reject") decide(act);
    else if (act === "paint") setPaint(!(state.paint && !state.erase), false);
    else if (act === "erase") setPaint(!(state.paint && state.erase), true);
    else if (act === "clear-mask") clearMask();
  }

  function wireDialog() {
    // On the document: a key pressed while focus fell out of the dialog still reaches it.
    document.addEventListener("keydown", function (event) {
      if (dialog.open && !(send.dialog && send.dialog.open)) onKey(event);
    });
    dialog.addEventListener("click", onAct);
    dialog.addEventListener("close", onClosed);
    var form = $(dialog, "[data-bi-refine]");
    form.addEventListener("submit", submitRefine);
    form.addEventListener("change", function (event) {
      if (event.target.name === "operation") opChanged();
      if (event.target.name === "provider") loadOptions(state.items[state.index], event.target.value);
    });
    var box = $(dialog, "[data-bi-refine-box]");
    box.addEventListener("toggle", function () {
      if (box.open && !state.mask && state.mode === "single") attachMask(state.panes[0], state.items[state.index]);
    });
    window.addEventListener("resize", function () {
      if (dialog.open) fit();
    });
  }

  // --- compare picks ---------------------------------------------------------------------------

  function picked() {
    var ids = [];
    document.querySelectorAll("input[data-bi-compare]:checked").forEach(function (box) {
      if (!box.closest("dialog") && ids.indexOf(box.value) < 0) ids.push(box.value);
    });
    return ids;
  }

  function updateBar() {
    if (!ensureDialog()) return;
    var ids = picked();
    var bar = document.querySelector("[data-bi-compare-bar]");
    bar.hidden = ids.length === 0;
    bar.querySelector("[data-bi-compare-count]").textContent =
      ids.length === 1 ? "1 image picked: pick another to compare." : ids.length + " images picked.";
    bar.querySelector('[data-bi-act="compare"]').disabled = ids.length < 2;
    document.querySelectorAll(".bi-card[data-result]").forEach(function (card) {
      card.classList.toggle("bi-card--picked", ids.indexOf(card.dataset.result) >= 0);
    });
  }

  function onBar(event) {
    var button = event.target.closest("[data-bi-compare-bar] [data-bi-act]");
    if (!button) return;
    if (button.dataset.biAct === "compare") openCompare(picked());
    if (button.dataset.biAct === "compare-clear") {
      document.querySelectorAll("input[data-bi-compare]:checked").forEach(function (box) { box.checked = false; });
      updateBar();
    }
  }

  // --- send a playground image to a section ------------------------------------------------------

  var send = { dialog: null, id: null, timer: null };

  function wireSend() {
    send.dialog = document.getElementById("bi-send");
    if (!send.dialog) return;
    var d = send.dialog;
    var q = $(d, "[data-bi-send-q]");
    q.addEventListener("input", function () {
      window.clearTimeout(send.timer);
      send.timer = window.setTimeout(loadPosts, 250);
    });
    $(d, "[data-bi-send-post]").addEventListener("change", loadSections);
    $(d, "[data-bi-send-close]").addEventListener("click", function () { d.close(); });
    $(d, "[data-bi-send-form]").addEventListener("submit", submitSend);
    d.addEventListener("close", function () {
      var back = document.querySelector('[data-bi-send="' + send.id + '"]');
      if (back) back.focus();
    });
  }

  function openSend(id) {
    if (!ensureDialog() || !send.dialog) return;
    send.id = id;
    var d = send.dialog;
    $(d, "[data-bi-send-what]").textContent = "#" + id;
    say($(d, "[data-bi-send-msg]"), "");
    $(d, "[data-bi-send-submit]").disabled = false;
    d.showModal();
    $(d, "[data-bi-send-q]").focus();
    loadPosts();
  }

  function fill(select, rows, value, label) {
    select.length = 1;
    rows.forEach(function (row) {
      var option = document.createElement("option");
      option.value = row[value];
      option.textContent = row[label];
      select.appendChild(option);
    });
  }

  function loadPosts() {
    var d = send.dialog;
    var q = $(d, "[data-bi-send-q]").value;
    return request(endpoint("posts/?q=" + encodeURIComponent(q))).then(function (answer) {
      if (!answer.ok) return say($(d, "[data-bi-send-msg]"), answer.data.error, "error");
      var posts = answer.data.posts || [];
      fill($(d, "[data-bi-send-post]"), posts, "ref", "title");
      if (!posts.length) say($(d, "[data-bi-send-msg]"), "No post you may add images to matches.", "error");
      else say($(d, "[data-bi-send-msg]"), "");
      var sectionSelect = $(d, "[data-bi-send-section]");
      fill(sectionSelect, [], "key", "title");
      sectionSelect.disabled = true;
    });
  }

  function loadSections() {
    var d = send.dialog;
    var post = $(d, "[data-bi-send-post]").value;
    var select = $(d, "[data-bi-send-section]");
    fill(select, [], "key", "title");
    select.disabled = true;
    if (!post) return Promise.resolve();
    return request(endpoint("sections/?post=" + encodeURIComponent(post))).then(function (answer) {
      if (!answer.ok) return say($(d, "[data-bi-send-msg]"), answer.data.error, "error");
      fill(select, answer.data.sections || [], "key", "title");
      select.disabled = false;
    });
  }

  function submitSend(event) {
    event.preventDefault();
    var d = send.dialog;
    var button = $(d, "[data-bi-send-submit]");
    var body = new FormData();
    body.set("post", $(d, "[data-bi-send-post]").value);
    body.set("section", $(d, "[data-bi-send-section]").value);
    button.disabled = true;
    request(endpoint(send.id + "/attach/"), { method: "POST", body: body }).then(function (answer) {
      if (!answer.ok) {
        say($(d, "[data-bi-send-msg]"), answer.data.error, "error");
        button.disabled = false;
        return;
      }
      say($(d, "[data-bi-send-msg]"), answer.data.message, "ok");
      window.setTimeout(function () { window.location.reload(); }, 900);
    });
  }

  // --- "N of N candidates finished" --------------------------------------------------------------

  var groups = {};
  var scanTimer = null;

  function scanGroups() {
    scanTimer = null;
    fillTools(document);
    var seen = {};
    var now = {};
    document.querySelectorAll("[data-bi-tools][data-group]").forEach(function (el) {
      if (el.closest("dialog, .bi-history, .bi-lineage") || seen[el.dataset.result]) return;
      seen[el.dataset.result] = true;
      var card = el.closest(".bi-card");
      var status = (card && card.dataset.status) || el.dataset.status;
      var g = (now[el.dataset.group] = now[el.dataset.group] || { total: 0, active: 0, ok: 0, failed: 0, where: "" });
      g.total += 1;
      if (status === "queued" || status === "running") g.active += 1;
      if (status === "succeeded") g.ok += 1;
      if (status === "failed") g.failed += 1;
      if (!g.where) {
        var panel = el.closest(".bi-panel");
        var title = panel && panel.querySelector(".bi-panel__head h2, h2");
        g.where = title ? "section “" + title.textContent.trim() + "”" : "this comparison";
      }
    });
    Object.keys(now).forEach(function (group) {
      var g = now[group];
      var known = groups[group] || (groups[group] = { active: false, told: false });
      if (g.active) known.active = true;
      else if (known.active && !known.told) {
        known.told = true;
        notice(g);
      }
    });
  }

  function scheduleScan() {
    if (scanTimer === null) scanTimer = window.setTimeout(scanGroups, 150);
  }

  function notice(g) {
    if (!ensureDialog()) return;
    var region = document.querySelector("[data-bi-notices]");
    var item = document.createElement("div");
    item.className = "bi-notice" + (g.failed ? " bi-notice--failed" : "");
    var text = document.createElement("p");
    text.textContent =
      g.ok + " of " + g.total + " candidate" + (g.total === 1 ? "" : "s") + " finished for " + g.where +
      (g.failed ? "; " + g.failed + " failed." : ".");
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.setAttribute("aria-label", "Dismiss");
    dismiss.textContent = "×";
    dismiss.addEventListener("click", function () { item.remove(); });
    item.appendChild(text);
    item.appendChild(dismiss);
    region.appendChild(item);
  }

  // --- start ------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", function () {
    fillTools(document);
    if (!document.getElementById("bi-viewer-template")) return;
    document.addEventListener("click", function (event) {
      var view = event.target.closest("[data-bi-view]");
      if (view && !view.closest("dialog")) {
        if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        open(view.dataset.biView);
        return;
      }
      var button = event.target.closest("[data-bi-open]");
      if (button && !button.closest("dialog")) {
        event.preventDefault();
        open(button.dataset.biOpen, button.dataset.biMode);
        return;
      }
      var sendButton = event.target.closest("[data-bi-send]");
      if (sendButton) {
        event.preventDefault();
        openSend(sendButton.dataset.biSend);
        return;
      }
      onBar(event);
    });
    document.addEventListener("change", function (event) {
      if (event.target.matches && event.target.matches("input[data-bi-compare]")) updateBar();
    });
    document.addEventListener("bi:card-updated", function (event) {
      if (event.detail && event.detail.card) fillTools(event.detail.card);
      scheduleScan();
    });
    new MutationObserver(scheduleScan).observe(document.body, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ["data-status"],
    });
    scanGroups();
    if (picked().length) updateBar();
  });
})();
