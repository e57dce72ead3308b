// The sidebar's script: renders the extension's view model and posts clicks back.
(function () {
  const vscode = acquireVsCodeApi();
  const $ = (id) => document.getElementById(id);
  const post = (type, extra) => vscode.postMessage(Object.assign({ type }, extra || {}));
  const ask = () => {
    const prompt = $("prompt").value.trim();
    if (prompt) post("ask", { prompt, scope: $("scope").value });
  };
  $("ask").addEventListener("click", ask);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) ask();
  });
  for (const id of ["cancel", "apply", "accept", "reject", "retry"]) {
    $(id).addEventListener("click", () => post(id));
  }
  $("connection").addEventListener("click", () => post("status"));

  window.addEventListener("message", (event) => {
    const m = event.data;
    $("connection").textContent = m.connection;
    $("answer").textContent = m.answer;
    $("answer").dataset.phase = m.phase;
    $("message").textContent = m.message;
    $("message").className = m.phase === "failed" ? "error" : "";
    $("context").replaceChildren(
      ...m.context.map((c) => {
        const li = document.createElement("li");
        li.textContent = `${c.path} (${c.reason}, ${c.tokens} tokens)`;
        return li;
      }),
    );
    $("files").replaceChildren(
      ...m.files.map((f) => {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = "#";
        a.className = "file";
        a.textContent = `${f.path} (${f.status})`;
        a.addEventListener("click", (e) => {
          e.preventDefault();
          post("diff", { path: f.path });
        });
        li.appendChild(a);
        return li;
      }),
    );
    const open = m.phase === "final" || m.phase === "applied";
    $("ask").disabled = m.busy;
    $("cancel").disabled = !m.busy;
    $("apply").disabled = !(m.phase === "final" && m.files.length);
    $("accept").disabled = !(open && m.files.length);
    $("reject").disabled = !open;
    $("retry").hidden = !m.retryable;
  });
  post("ready");
})();
