import Glibc
import Logging
import Framing
import Reactor

/// The browser terminal at `/` (dev mode, or when --web-root is set): an
/// embedded page on xterm.js (DOM renderer, so tests can read the screen)
/// speaking the relay protocol, plus the xterm.js assets read once from the
/// web root at start-up.
struct WebPage: Sendable {
    let enabled: Bool
    /// name → (content type, bytes), e.g. "xterm.min.js".
    let assets: [String: (String, [UInt8])]
    let missing: [String]

    static let assetNames: [(String, String)] = [
        ("xterm.min.js", "application/javascript"),
        ("xterm-addon-fit.min.js", "application/javascript"),
        ("xterm.min.css", "text/css"),
    ]

    /// Where `make setup` puts the assets (`.cache/web` of the checkout),
    /// looked for from the working directory and from the executable's
    /// folder upwards, so `relay --dev` run from a checkout finds them.
    static func defaultRoot() -> String? {
        var starts: [String] = []
        var cwd = [CChar](repeating: 0, count: 4096)
        if getcwd(&cwd, cwd.count) != nil { starts.append(cwd.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }) }
        var exe = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &exe, exe.count - 1)
        if n > 0 {
            let path = exe.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            starts.append(String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]))
        }
        for start in starts {
            var dir = start
            for _ in 0..<6 {
                let candidate = dir + "/.cache/web"
                if access(candidate + "/" + assetNames[0].0, R_OK) == 0 { return candidate }
                guard let slash = dir.lastIndex(of: "/"), !dir.isEmpty else { break }
                dir = String(dir[..<slash])
            }
        }
        return nil
    }

    static func load(root: String?, enabled: Bool, logger: Logger) -> WebPage {
        guard enabled else { return WebPage(enabled: false, assets: [:], missing: []) }
        var assets: [String: (String, [UInt8])] = [:]
        var missing: [String] = []
        for (name, type) in assetNames {
            if let root, let bytes = FileContents.bytes("\(root)/\(name)") { assets[name] = (type, bytes) } else { missing.append(name) }
        }
        if !missing.isEmpty {
            logger.warning("terminal page assets missing (run `make setup`, which fetches them into .cache/web)",
                           metadata: ["web_root": "\(root ?? "-")", "missing": "\(missing.joined(separator: ","))"])
        }
        return WebPage(enabled: true, assets: assets, missing: missing)
    }

    /// The response for `path`, or nil when it is not a page path.
    func response(for path: String) -> HTTPReply? {
        guard enabled else { return nil }
        if path == "/" || path == "/index.html" {
            if !missing.isEmpty {
                return .text(503, "xterm.js assets missing: \(missing.joined(separator: ", ")); run `make setup` and start with --web-root .cache/web\n")
            }
            return .text(200, Self.html, contentType: "text/html; charset=utf-8")
        }
        if path.hasPrefix("/static/"), let (type, bytes) = assets[String(path.dropFirst(8))] {
            return HTTPReply(status: 200, body: bytes, contentType: type, headers: [("Cache-Control", "max-age=3600")])
        }
        return nil
    }

    static let html = #"""
    <!doctype html>
    <html><head><meta charset="utf-8"><title>relay terminal</title>
    <link rel="stylesheet" href="/static/xterm.min.css">
    <style>html,body{margin:0;height:100%;background:#111}#term{position:absolute;inset:24px 0 0 0}
    #status{height:24px;color:#9c9;font:13px/24px monospace;padding:0 8px}</style>
    </head><body><div id="status">connecting…</div><div id="term"></div>
    <script src="/static/xterm.min.js"></script><script src="/static/xterm-addon-fit.min.js"></script>
    <script>
    const token = new URLSearchParams(location.search).get('token') || '';
    const term = new Terminal({rendererType: 'dom', cursorBlink: true, scrollback: 5000});
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(document.getElementById('term'));
    fit.fit();
    const statusLine = document.getElementById('status');
    const status = (s) => { statusLine.textContent = s; };
    const encoder = new TextEncoder(), decoder = new TextDecoder();
    let ws = null, delay = 1000;
    function send(type, bytes) {
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      const frame = new Uint8Array(1 + bytes.length);
      frame[0] = type; frame.set(bytes, 1);
      ws.send(frame);
    }
    function sendResize() {
      const b = new Uint8Array(4), v = new DataView(b.buffer);
      v.setUint16(0, term.cols); v.setUint16(2, term.rows);
      send(0x04, b);
    }
    function connect() {
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      ws = new WebSocket(`${scheme}//${location.host}/browser/relay?token=${encodeURIComponent(token)}`);
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => { status('connected'); delay = 1000; sendResize(); send(0x0A, new Uint8Array(0)); };
      ws.onmessage = (e) => {
        const d = new Uint8Array(e.data), type = d[0], body = d.subarray(1);
        if (type === 0x02) term.write(body);
        // A snapshot replaces the screen. RIS (ESC c) rather than term.reset():
        // writes are queued, so the reset must be queued in order with them.
        else if (type === 0x01) { const s = JSON.parse(decoder.decode(body)); term.write('\x1bc' + (s.serialized_content || '')); }
        else if (type === 0x08) status('runner away: waiting for it to return');
        else if (type === 0x09) status('connected');
      };
      ws.onclose = (e) => {
        status(`disconnected (${e.code}); retrying`);
        setTimeout(connect, delay * (0.5 + Math.random()));
        delay = Math.min(delay * 2, 30000);
      };
    }
    term.onData((data) => send(0x03, encoder.encode(data)));
    window.addEventListener('resize', () => { fit.fit(); sendResize(); });
    connect();
    </script></body></html>
    """#
}
