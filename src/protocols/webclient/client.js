// The gatehouse web client. It speaks Evennia's webclient protocol: every
// websocket frame is a JSON array [cmdname, args, kwargs]. It keeps an input
// history, reconnects after a drop, resumes its session after a page reload
// (the resume token lives in sessionStorage, one per tab), and sends the idle
// keepalive.
(function () {
  "use strict";
  var output = document.getElementById("output");
  var input = document.getElementById("input");
  var form = document.getElementById("inputform");
  var status = document.getElementById("status");
  var history = [], historyPos = 0, socket = null, retry = 1000;
  var MAX_LINES = 2000, IDLE_MS = 180000;

  // xterm256 colours for the classes the server uses.
  (function colours() {
    var base = ["#000000", "#800000", "#008000", "#808000", "#000080", "#800080", "#008080", "#c0c0c0",
                "#808080", "#ff0000", "#00ff00", "#ffff00", "#0000ff", "#ff00ff", "#00ffff", "#ffffff"];
    var steps = [0, 95, 135, 175, 215, 255], rules = [];
    function hex(n) { return ("0" + n.toString(16)).slice(-2); }
    for (var i = 0; i < 256; i++) {
      var c;
      if (i < 16) c = base[i];
      else if (i < 232) {
        var j = i - 16;
        c = "#" + hex(steps[Math.floor(j / 36)]) + hex(steps[Math.floor(j / 6) % 6]) + hex(steps[j % 6]);
      } else { var g = 8 + (i - 232) * 10; c = "#" + hex(g) + hex(g) + hex(g); }
      var n = ("00" + i).slice(-3);
      rules.push(".color-" + n + "{color:" + c + "}", ".bgcolor-" + n + "{background-color:" + c + "}");
    }
    var style = document.createElement("style");
    style.textContent = rules.join("\n");
    document.head.appendChild(style);
  })();

  function setStatus(text, cls) { status.textContent = text; status.className = "status " + cls; }

  function atBottom() { return output.scrollHeight - output.scrollTop - output.clientHeight < 40; }

  function show(html, cls) {
    var follow = atBottom();
    var div = document.createElement("div");
    div.className = "msg" + (cls ? " " + cls : "");
    div.innerHTML = html; // the server sends escaped HTML
    output.appendChild(div);
    while (output.childNodes.length > MAX_LINES) output.removeChild(output.firstChild);
    if (follow) output.scrollTop = output.scrollHeight;
  }

  function showText(text, cls) {
    var span = document.createElement("span");
    span.textContent = text;
    show(span.innerHTML, cls);
  }

  function send(cmd, args, kwargs) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify([cmd, args || [], kwargs || {}]));
      return true;
    }
    return false;
  }

  function connect() {
    setStatus("connecting…", "connecting");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    // A token from this tab's last connection brings its session back.
    var token = sessionStorage.getItem("gatehouse.token");
    var query = token ? "?token=" + encodeURIComponent(token) : "";
    socket = new WebSocket(scheme + location.hostname + ":" + window.GATEHOUSE.websocketPort + "/" + query);
    socket.onopen = function () { retry = 1000; setStatus("connected", "connected"); };
    socket.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      var cmd = msg[0], args = msg[1] || [], kwargs = msg[2] || {};
      if (cmd === "text" || cmd === "prompt") {
        show(args.join(""), kwargs.type === "error" ? "error" : "");
      } else if (cmd === "session_token") {
        sessionStorage.setItem("gatehouse.token", args[0]);
      } else if (cmd === "logged_in") {
        document.title = document.getElementById("title").textContent + " (logged in)";
      }
    };
    socket.onclose = function () {
      setStatus("disconnected – reconnecting", "closed");
      showText("Connection lost; reconnecting in " + Math.round(retry / 1000) + " s …", "system");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var line = input.value;
    if (!send("text", [line], {})) { showText("Not connected.", "error"); return; }
    if (line.trim() !== "" && history[history.length - 1] !== line) history.push(line);
    if (history.length > 200) history.shift();
    historyPos = history.length;
    input.value = "";
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "ArrowUp" && historyPos > 0) {
      historyPos -= 1; input.value = history[historyPos]; event.preventDefault();
    } else if (event.key === "ArrowDown") {
      historyPos = Math.min(historyPos + 1, history.length);
      input.value = history[historyPos] || ""; event.preventDefault();
    }
  });

  output.addEventListener("click", function () {
    if (!window.getSelection || String(window.getSelection()) === "") input.focus();
  });

  setInterval(function () { send("text", ["idle"], {}); }, IDLE_MS);
  // Nothing is sent when the page goes away: a reload and a closed tab look the
  // same from here. The token stays in this tab's sessionStorage, so a reload
  // resumes the session, and the Portal ends it if no page comes back in time.
  connect();
})();
