// The simulator: every input becomes a signed LINE webhook event (server side);
// the replies are read back from the fake LINE API and drawn like LINE does.
(function () {
  const app = document.getElementById("app");
  const userId = app.dataset.user;
  const talk = document.getElementById("talk");
  const quick = document.getElementById("quick");
  let after = 0;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function scroll() { talk.scrollTop = talk.scrollHeight; }

  function userBubble(text) {
    const row = el("div", "row user");
    row.appendChild(el("div", "bubble", text));
    talk.appendChild(row); scroll();
  }
  function botRow(node) {
    const row = el("div", "row bot");
    row.appendChild(el("div", "avatar", "市"));
    row.appendChild(node);
    talk.appendChild(row); scroll();
  }

  function action(a) {
    if (a.type === "postback") {
      if (a.displayText) userBubble(a.displayText);
      send({ type: "postback", data: a.data });
    } else if (a.type === "message") {
      userBubble(a.text); send({ type: "text", text: a.text });
    } else if (a.type === "uri") {
      const note = el("div", "tel-toast", (a.uri.startsWith("tel:") ? "📞 発信: " : "🔗 開く: ") + decodeURIComponent(a.uri));
      talk.appendChild(note); scroll();
    }
  }

  const draw = window.LineRender;
  function bubble(b) { return draw.bubble(b, action); }

  function render(m) {
    if (m.type === "text") botRow(el("div", "bubble", m.text));
    else if (m.type === "flex") {
      const c = m.contents;
      if (c.type === "carousel") {
        const row = el("div", "carousel");
        row.setAttribute("aria-label", m.altText);
        c.contents.forEach(b => row.appendChild(bubble(b)));
        botRow(row);
      } else botRow(bubble(c));
    } else botRow(el("div", "bubble", "[" + m.type + "]"));
    quick.innerHTML = "";
    ((m.quickReply || {}).items || []).forEach(item => {
      const chip = el("button", "chip", item.action.label);
      chip.type = "button";
      chip.addEventListener("click", () => { quick.innerHTML = ""; action(item.action); });
      quick.appendChild(chip);
    });
  }

  let polling = null;
  async function poll() {
    // One fetch at a time: a timer tick and a send must not render a message twice.
    while (polling) await polling;
    polling = (async () => {
      const r = await fetch("/dev/messages?userId=" + userId + "&after=" + after);
      const data = await r.json();
      data.messages.forEach(row => { after = row.seq; render(row.message); });
    })();
    try { await polling; } finally { polling = null; }
  }
  // Alerts and campaigns arrive without the resident writing (a worker multicasts them).
  setInterval(() => { poll().catch(() => {}); }, 3000);
  async function send(payload) {
    payload.userId = userId;
    await fetch("/dev/send", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
    await poll();
  }

  document.getElementById("composer").addEventListener("submit", e => {
    e.preventDefault();
    const input = document.getElementById("text");
    const text = input.value.trim();
    if (!text) return;
    input.value = ""; quick.innerHTML = "";
    userBubble(text);
    send({ type: "text", text });
  });
  document.getElementById("follow").addEventListener("click", () => send({ type: "follow" }));
  document.getElementById("sticker").addEventListener("click", () => { userBubble("（スタンプ）"); send({ type: "sticker" }); });
  send({ type: "follow" });
})();
