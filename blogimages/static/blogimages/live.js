/* blogimages admin: live progress without reloading the page.
 *
 * An element with data-bi-live="review" or "playground" and data-status-url is polled
 * about once a second while any of its candidates is queued or running. Progress bars
 * update in place; when a candidate finishes, the review page fetches that section's
 * panel (data-section-url, with 0 standing for the section id) and patches only what
 * changed: the cards whose data-version differs, the header, the history list; the
 * forms (a chosen file, a ticked box, typed text) and open <details> stay as they are.
 * The playground swaps the card for the HTML the status answer carries. A running card shows
 * the provider's newest partial image when the status answer names one (preview, preview_url).
 * A form marked data-bi-once is sent
 * once: its buttons are disabled while the request runs. "Draft a prompt" and "Draft alt
 * text" buttons fetch a draft into a field. Forms keep working without script, except the
 * upload form, which script copies from the page's one template into each section.
 */
(function () {
  "use strict";

  var INTERVAL = 1000;
  var ACTIVE = { queued: true, running: true };

  function activeCount(root) {
    return root.querySelectorAll('.bi-card[data-status="queued"], .bi-card[data-status="running"]').length;
  }

  function showCount(root) {
    var n = activeCount(root);
    document.querySelectorAll("[data-bi-active-count]").forEach(function (el) {
      el.textContent = n ? n + " in progress" : "";
    });
    return n;
  }

  function updateProgress(card, r) {
    var bar = card.querySelector(".bi-progress__bar");
    if (bar) bar.style.width = r.progress + "%";
    var meter = card.querySelector(".bi-progress");
    if (meter) meter.setAttribute("aria-valuenow", r.progress);
    var text = card.querySelector("[data-bi-progress-text]");
    if (text) text.textContent = r.progress + "%" + (r.message ? " · " + r.message : "");
    if (card.dataset.status !== r.status) {
      card.dataset.status = r.status;
      card.className = card.className.replace(/bi-card--(queued|running)/, "bi-card--" + r.status);
      var label = card.querySelector("[data-bi-status]");
      if (label) {
        label.textContent = r.status_label;
        label.className = label.className.replace(/bi-badge--\w+/, "bi-badge--" + r.status);
      }
    }
  }

  // A running candidate's newest partial image (the status answer's preview count and URL,
  // the URL cache-busted by the count): shown in the card's thumbnail box above the progress
  // bar, swapped only when the count changes; nothing else on the card is touched.
  function showPreview(card, r) {
    if (!r.preview || !r.preview_url || card.dataset.preview === String(r.preview)) return;
    var box = card.querySelector(".bi-thumb");
    if (!box) return;
    var img = box.querySelector("img.bi-live-preview");
    if (!img) {
      img = document.createElement("img");
      img.className = "bi-live-preview";
      img.alt = "Preview of #" + r.id;
      img.setAttribute("data-bi-preview", "");
      img.addEventListener("error", function () { img.hidden = true; });
      img.addEventListener("load", function () { img.hidden = false; });
      box.prepend(img);
    }
    img.src = r.preview_url;
    card.dataset.preview = String(r.preview);
  }

  function getJSON(url) {
    // X-Requested-With: a host admin (Wagtail's) then answers a lost permission with 403,
    // not with a redirect to its dashboard that would read as a broken JSON reply.
    var headers = { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" };
    return fetch(url, { credentials: "same-origin", headers: headers }).then(function (resp) {
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.json();
    });
  }

  // Open <details> (a card's "sent" settings, its lineage, the section history), ticked
  // selection boxes and typed text survive a card being replaced: they are the editor's.
  function carryState(old, fresh) {
    old.querySelectorAll("details[data-bi-keep-open]").forEach(function (d) {
      var twin = fresh.querySelector('details[data-bi-keep-open="' + d.dataset.biKeepOpen + '"]');
      if (twin) twin.open = d.open;
    });
    // A card's own <details> (sent settings, lineage) are known by their class within the card.
    ["bi-sent", "bi-lineage"].forEach(function (name) {
      var d = old.querySelector(":scope > details." + name);
      var twin = fresh.querySelector(":scope > details." + name);
      if (d && twin) twin.open = d.open;
    });
    old.querySelectorAll("input.bi-select").forEach(function (box) {
      var twin = fresh.querySelector('input.bi-select[value="' + box.value + '"]');
      if (twin) twin.checked = box.checked;
    });
  }

  function sameMarkup(a, b) {
    return a.innerHTML.trim() === b.innerHTML.trim();
  }

  // Apply the section's fresh HTML to the panel on the page, changing only what changed:
  // cards (keyed by data-result) whose data-version differs are replaced, new ones are
  // inserted in order, gone ones removed; the header, the latest comment and the history
  // list are updated in place. The forms (a chosen upload file, the "approve it" box, a
  // comment being typed) and open <details> are left alone.
  function patchSection(old, fresh) {
    var changed = [];
    old.className = fresh.className;
    ["head", "comment", "history", "history-summary"].forEach(function (part) {
      var a = old.querySelector('[data-bi-part="' + part + '"]');
      var b = fresh.querySelector('[data-bi-part="' + part + '"]');
      if (a && b && !sameMarkup(a, b)) a.innerHTML = b.innerHTML;
    });
    var history = old.querySelector("details.bi-history");
    var freshHistory = fresh.querySelector("details.bi-history");
    if (history && freshHistory) history.hidden = freshHistory.hidden;
    var replaces = old.querySelector("[data-bi-replaces]");
    var freshReplaces = fresh.querySelector("[data-bi-replaces]");
    if (replaces && freshReplaces) replaces.value = freshReplaces.value;

    var list = old.querySelector("[data-bi-cards]");
    var freshList = fresh.querySelector("[data-bi-cards]");
    if (!list || !freshList) return changed;
    var wanted = {};
    var previous = null;
    Array.prototype.forEach.call(freshList.querySelectorAll(":scope > .bi-card"), function (card) {
      var id = card.dataset.result;
      wanted[id] = true;
      var current = list.querySelector(':scope > .bi-card[data-result="' + id + '"]');
      if (!current) {
        if (previous) previous.after(card);
        else list.prepend(card);
        changed.push(card);
      } else if (current.dataset.version !== card.dataset.version || current.dataset.status !== card.dataset.status) {
        carryState(current, card);
        current.replaceWith(card);
        changed.push(card);
      } else {
        card = current;
      }
      previous = card;
    });
    list.querySelectorAll(":scope > .bi-card").forEach(function (card) {
      if (!wanted[card.dataset.result]) card.remove();
    });
    var empty = list.querySelector(":scope > .bi-empty");
    if (empty && list.querySelector(":scope > .bi-card")) empty.remove();
    return changed;
  }

  function refreshSection(root, sectionId) {
    var url = root.dataset.sectionUrl.replace(/\/0\/$/, "/" + encodeURIComponent(sectionId) + "/");
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
      .then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.text();
      })
      .then(function (html) {
        var old = document.getElementById("bi-section-" + sectionId);
        if (!old) return;
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        patchSection(old, fresh).forEach(function (card) {
          revealDrafts(card);
          document.dispatchEvent(
            new CustomEvent("bi:card-updated", { detail: { id: card.dataset.result, section: sectionId, card: card } })
          );
        });
        showSelected();
      });
  }

  function showNote(card, r) {
    var note = card.querySelector("[data-bi-queue-note]");
    if (!note || r.note === undefined) return;
    note.textContent = r.note || "";
    note.hidden = !r.note;
  }

  function pollReview(root) {
    return getJSON(root.dataset.statusUrl).then(function (data) {
      var refresh = {};
      data.results.forEach(function (r) {
        var card = root.querySelector('.bi-card[data-result="' + r.id + '"]');
        if (!card) {
          refresh[r.section] = true; // a candidate made elsewhere (another editor, the API)
        } else if (card.dataset.status !== r.status && !r.active) {
          refresh[r.section] = true; // finished: its image, its buttons
        } else if (r.active) {
          updateProgress(card, r);
          showNote(card, r);
          showPreview(card, r);
        } else if (r.version && card.dataset.version && card.dataset.version !== r.version) {
          refresh[r.section] = true; // decided elsewhere (another editor, the API)
        }
      });
      var ids = Object.keys(refresh);
      return Promise.all(ids.map(function (id) { return refreshSection(root, id); })).then(function () {
        return data.active || ids.length > 0;
      });
    });
  }

  // "Approve/reject the selected": how many boxes are ticked, next to the buttons.
  function showSelected() {
    var count = document.querySelectorAll("input.bi-select:checked").length;
    document.querySelectorAll("[data-bi-selected-count]").forEach(function (el) {
      el.textContent = count ? "(" + count + " ticked)" : "(none ticked)";
    });
  }

  function pollPlayground(root) {
    return getJSON(root.dataset.statusUrl).then(function (data) {
      data.results.forEach(function (r) {
        var card = root.querySelector('.bi-card[data-result="' + r.id + '"]');
        if (!card) return;
        if (card.dataset.status !== r.status && !r.active) {
          var holder = document.createElement("div");
          holder.innerHTML = r.html.trim();
          card.replaceWith(holder.firstElementChild);
        } else {
          updateProgress(card, r);
          showPreview(card, r);
        }
      });
      return data.active;
    });
  }

  function watch(root) {
    var poll = root.dataset.biLive === "playground" ? pollPlayground : pollReview;
    var timer = null;
    var failures = 0;

    function tick() {
      timer = null;
      poll(root)
        .then(function (more) {
          failures = 0;
          showCount(root);
          if (more || activeCount(root)) schedule(INTERVAL);
        })
        .catch(function () {
          failures += 1; // the server restarting, a dropped connection: back off, keep trying
          schedule(Math.min(30000, INTERVAL * Math.pow(2, failures)));
        });
    }

    function schedule(delay) {
      if (timer === null) timer = window.setTimeout(tick, delay);
    }

    if (showCount(root)) schedule(INTERVAL);
  }

  // Each section's upload form is a copy of the page's one <template id="bi-upload-template">
  // put in its [data-bi-upload="KEY"] slot (the page stays light with many sections) in place
  // of the link that, without script, opens the page with that section's form. The slot is
  // in the panel's side, which live updates leave alone, so a chosen file stays.
  function attachUploads(root) {
    var template = document.getElementById("bi-upload-template");
    if (!template) return;
    root.querySelectorAll("[data-bi-upload]").forEach(function (slot) {
      if (slot.querySelector("form")) return;
      slot.querySelectorAll("[data-bi-upload-link]").forEach(function (link) { link.remove(); });
      var key = slot.dataset.biUpload;
      var form = template.content.cloneNode(true);
      var altId = "bi-upload-alt-" + key;
      form.querySelectorAll('input[name="section"]').forEach(function (el) { el.value = key; });
      form.querySelectorAll('[id="bi-upload-alt-__KEY__"]').forEach(function (el) { el.id = altId; });
      form.querySelectorAll('label[for="bi-upload-alt-__KEY__"]').forEach(function (el) { el.htmlFor = altId; });
      form.querySelectorAll('[data-bi-draft="bi-upload-alt-__KEY__"]').forEach(function (el) {
        el.dataset.biDraft = altId;
      });
      slot.appendChild(form);
    });
  }

  // "Draft a prompt" and "Draft alt text" (BLOGIMAGES_WRITER): the button's form is sent
  // with its do=... to the page, which answers {"text"} or {"error"}; the draft goes into
  // the field named by data-bi-draft (an element id, or a field of the form) for the editor
  // to edit. Only the form's own Save or Approve stores it. Without script the buttons
  // stay hidden and the fields work as before.
  function revealDrafts(root) {
    root.querySelectorAll("button[data-bi-draft][hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }

  function askDraft(event) {
    var button = event.target.closest("button[data-bi-draft]");
    if (!button || !button.form) return;
    event.preventDefault();
    var form = button.form;
    var name = button.dataset.biDraft;
    var field = document.getElementById(name) || form.elements[name];
    var note = form.querySelector("[data-bi-draft-note]");
    var body = new FormData(form);
    body.set("do", button.value);
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    if (note) {
      note.classList.remove("bi-error");
      note.textContent = "Drafting…";
    }
    var headers = { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" };
    fetch(window.location.pathname, { method: "POST", body: body, credentials: "same-origin", headers: headers })
      .then(function (resp) {
        return resp.json().catch(function () {
          return { error: "Could not draft: the page answered HTTP " + resp.status + "." };
        });
      })
      .then(function (data) {
        if (data.error) throw new Error(data.error);
        if (field) {
          field.value = data.text;
          field.focus();
        }
        if (note) note.textContent = "Drafted by " + data.model + ": check it, edit it, then save.";
      })
      .catch(function (err) {
        if (!note) return;
        note.classList.add("bi-error");
        note.textContent = err.message;
      })
      .then(function () {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      });
  }

  function requireComment(event) {
    var button = event.target.closest("[data-bi-needs-comment]");
    if (!button) return;
    var form = button.form;
    var area = form && form.querySelector("textarea[name=comment]");
    if (area && !area.value.trim()) {
      event.preventDefault();
      area.setCustomValidity(button.value.indexOf("reject") === 0 ? "Say why: a comment is required to reject." : "Write a comment first.");
      area.reportValidity();
      area.addEventListener("input", function () { area.setCustomValidity(""); }, { once: true });
    }
  }

  // One request, one effect: once a form marked data-bi-once is sent, its buttons (those
  // outside it that name it with form="..." too) stay disabled until the answer replaces
  // the page, and a second submit is dropped. The server holds the rule anyway: the
  // form's request_key makes a repeated generate answer with the first one's images.
  function setBusy(form, busy) {
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.tagName !== "BUTTON" && el.type !== "submit") return;
      el.disabled = busy;
      if (busy) el.setAttribute("aria-busy", "true");
      else el.removeAttribute("aria-busy");
    });
  }

  function sendOnce(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-bi-once")) return;
    if (form.dataset.biSending) {
      event.preventDefault();
      return;
    }
    form.dataset.biSending = "1";
    // After this event: a button disabled now would drop its name=value from the request.
    window.setTimeout(function () { setBusy(form, true); }, 0);
  }

  function reviveForms(event) {
    if (!event.persisted) return; // back/forward cache: the page is live again
    document.querySelectorAll("form[data-bi-once][data-bi-sending]").forEach(function (form) {
      delete form.dataset.biSending;
      setBusy(form, false);
    });
  }

  function loadModels(form) {
    var list = document.getElementById("bi-models");
    if (!list) return;
    var url = new URL(form.dataset.modelsUrl, window.location.href);
    form.querySelectorAll('input[name="providers"]:checked').forEach(function (box) {
      url.searchParams.append("provider", box.value);
    });
    getJSON(url.toString()).then(function (data) {
      var seen = {};
      list.innerHTML = "";
      Object.keys(data.models).forEach(function (alias) {
        data.models[alias].forEach(function (name) {
          if (seen[name]) return;
          seen[name] = true;
          var option = document.createElement("option");
          option.value = name;
          option.label = alias;
          list.appendChild(option);
        });
      });
    }).catch(function () { /* suggestions only */ });
  }

  // --- Asking before publishing without alt text (issue 11, point 8) ---------------------------
  // A field marked data-bi-alt shows its form's [data-bi-alt-warning] while it is empty (in
  // the upload form: while "approve it" is ticked too). An approval with the field empty (a
  // do=approve:ID button of the form, or Upload with "approve it") is held: the sentence and
  // an "Approve without alt text" button appear next to the control, and that button sends
  // the same request with publish_without_alt=1. Without script the server asks the same.
  var MISSING_ALT = "This image will be published without alt text; screen readers will say nothing. Approve anyway?";

  function altField(form) {
    return form ? form.querySelector("[data-bi-alt]") : null;
  }

  function showAltWarning(form) {
    var field = altField(form);
    var warning = form && form.querySelector("[data-bi-alt-warning]");
    if (!field || !warning) return;
    var box = form.querySelector('input[name="approve_now"]');
    warning.hidden = !!field.value.trim() || (box ? !box.checked : false);
  }

  function approves(button) {
    if (button.value.indexOf("approve:") === 0) return true;
    var box = button.value === "upload" && button.form.querySelector('input[name="approve_now"]');
    return !!(box && box.checked);
  }

  function confirmAlt(event) {
    var button = event.target.closest ? event.target.closest('button[name="do"]') : null;
    if (!button || !button.form || !approves(button)) return;
    var form = button.form;
    var field = altField(form);
    // Confirmed already: the held request's hidden field, or the box a refused upload's form offers.
    if (!field || field.value.trim() || form.querySelector('input[name="publish_without_alt"][type="hidden"], input[name="publish_without_alt"]:checked')) return;
    event.preventDefault();
    event.stopPropagation();
    document.querySelectorAll("[data-bi-alt-ask]").forEach(function (old) { old.remove(); });
    var ask = document.createElement("div");
    ask.className = "bi-alt-ask";
    ask.setAttribute("role", "alert");
    ask.setAttribute("data-bi-alt-ask", "");
    var text = document.createElement("p");
    text.textContent = MISSING_ALT;
    var yes = document.createElement("button");
    yes.type = "button";
    yes.className = "button";
    yes.textContent = "Approve without alt text";
    var no = document.createElement("button");
    no.type = "button";
    no.className = "button";
    no.textContent = "Write alt text";
    ask.append(text, yes, " ", no);
    yes.addEventListener("click", function () {
      var confirm = document.createElement("input");
      confirm.type = "hidden";
      confirm.name = "publish_without_alt";
      confirm.value = "1";
      form.appendChild(confirm);
      ask.remove();
      form.requestSubmit(button);
    });
    no.addEventListener("click", function () {
      ask.remove();
      field.focus();
    });
    var place = button.closest(".bi-actions") || button;
    place.insertAdjacentElement("afterend", ask);
    yes.focus();
  }

  function watchAltFields() {
    document.addEventListener("input", function (event) {
      if (event.target.matches && event.target.matches("[data-bi-alt]")) showAltWarning(event.target.form);
    });
    document.addEventListener("change", function (event) {
      if (event.target.name === "approve_now") showAltWarning(event.target.form);
    });
    document.addEventListener("click", confirmAlt, true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    attachUploads(document);
    watchAltFields();
    document.querySelectorAll("[data-bi-live]").forEach(watch);
    document.addEventListener("click", requireComment, true);
    document.addEventListener("click", askDraft);
    revealDrafts(document);
    document.addEventListener("submit", sendOnce);
    window.addEventListener("pageshow", reviveForms);
    document.addEventListener("change", function (event) {
      if (event.target.matches && event.target.matches("input.bi-select")) showSelected();
    });
    showSelected();
    var compose = document.querySelector("form[data-models-url]");
    if (compose) {
      compose.addEventListener("change", function (event) {
        if (event.target.name === "providers") loadModels(compose);
      });
      loadModels(compose);
    }
  });
})();
