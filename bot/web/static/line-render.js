// How LINE draws a message (text, Flex bubble or carousel), shared by the /dev/chat talk screen
// and the staff console's preview, so staff see exactly what residents will see.
window.LineRender = (function () {
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function flexNode(node, onAction) {
    if (node.type === "box") {
      const box = el("div", "box");
      box.style.display = "flex";
      box.style.flexDirection = node.layout === "horizontal" ? "row" : "column";
      box.style.gap = "4px";
      (node.contents || []).forEach(c => box.appendChild(flexNode(c, onAction)));
      if (node.backgroundColor) box.style.background = node.backgroundColor;
      if (node.cornerRadius) box.style.borderRadius = node.cornerRadius;
      if (node.paddingAll) box.style.padding = node.paddingAll;
      if (node.action) {  // a tappable row (the triage card), as LINE draws it
        box.classList.add("tappable");
        box.setAttribute("role", "button");
        box.tabIndex = 0;
        box.addEventListener("click", () => onAction(node.action));
      }
      return box;
    }
    if (node.type === "text") {
      const t = el("div", "t-" + (node.weight === "bold" ? "bold" : (node.size || "md")), node.text);
      if (node.color) t.style.color = node.color;
      return t;
    }
    if (node.type === "button") {
      const b = el("button", "btn " + (node.style || "link"), node.action.label);
      b.type = "button";
      b.addEventListener("click", () => onAction(node.action));
      return b;
    }
    return el("div", "", "");
  }

  function bubble(b, onAction) {
    const card = el("div", "card");
    ["header", "hero", "body", "footer"].forEach(part => {
      if (!b[part]) return;
      const wrap = el("div", part);
      wrap.appendChild(flexNode(b[part], onAction));
      card.appendChild(wrap);
    });
    return card;
  }

  // One message as a node (no avatar row): text bubble, card, or carousel.
  function message(m, onAction) {
    onAction = onAction || function () {};
    if (m.type === "text") return el("div", "bubble", m.text);
    if (m.type === "flex") {
      const c = m.contents;
      if (c.type === "carousel") {
        const row = el("div", "carousel");
        row.setAttribute("aria-label", m.altText);
        c.contents.forEach(b => row.appendChild(bubble(b, onAction)));
        return row;
      }
      return bubble(c, onAction);
    }
    return el("div", "bubble", "[" + m.type + "]");
  }

  return { el: el, flexNode: flexNode, bubble: bubble, message: message };
})();
