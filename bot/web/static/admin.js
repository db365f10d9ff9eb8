// The console's live preview: the form goes to the server (the same validation and the same
// renderer that residents' cards come from), and the answer is drawn by LineRender, as
// /dev/chat draws it. Also draws the stored preview on a record's page.
(function () {
  const draw = window.LineRender;

  function show(container, message) {
    container.innerHTML = "";
    container.appendChild(draw.message(message));
  }

  function reachText(reach) {
    let text = "いま送ると届く人数：" + reach.now + "人（登録 " + reach.subscribers + "人";
    if (reach.capped) text += "・本日の上限で除外 " + reach.capped + "人";
    if (reach.digest) text += "・夕方のまとめで届く " + reach.digest + "人";
    return text + "）";
  }

  const stored = document.getElementById("preview-data");
  if (stored) {
    const data = JSON.parse(stored.textContent);
    const box = document.getElementById("preview-static");
    Object.keys(data.messages).forEach(function (key) {
      const label = draw.el("p", "lock", (key === "en" ? "英語版" : key === "ja" ? "日本語" : "パターン" + key) +
        "・通知：" + data.alt_text[key]);
      const phone = draw.el("div", "phone-mini");
      phone.appendChild(draw.message(data.messages[key]));
      box.appendChild(label); box.appendChild(phone);
    });
  }

  const form = document.getElementById("compose");
  if (!form) return;
  const error = document.getElementById("preview-error");
  let timer = null;
  async function refresh() {
    const response = await fetch(form.dataset.preview, { method: "POST", body: new FormData(form),
                                                          credentials: "same-origin" });
    const data = await response.json();
    if (!response.ok) {
      error.textContent = data.message; error.hidden = false; return;
    }
    error.hidden = true;
    document.getElementById("reach").textContent = reachText(data.reach);
    const card = document.getElementById("preview-card");
    if (card) {
      show(card, data.messages.ja);
      document.getElementById("alt-text").textContent = data.alt_text.ja;
      const en = document.getElementById("preview-en-wrap");
      en.hidden = !data.messages.en;
      if (data.messages.en) show(document.getElementById("preview-en"), data.messages.en);
    }
    const variants = document.getElementById("preview-variants");
    if (variants) {
      variants.innerHTML = "";
      Object.keys(data.messages).forEach(function (name) {
        variants.appendChild(draw.el("p", "lock", "パターン" + name + "・通知：" + data.alt_text[name]));
        const phone = draw.el("div", "phone-mini");
        phone.appendChild(draw.message(data.messages[name]));
        variants.appendChild(phone);
      });
    }
  }
  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
  form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(refresh, 100); });
  refresh();
})();
