extension HTTPRequestHead {
    /// The request an HTTP/2 header block describes, in the HTTP/1 shape
    /// the router takes: `:method`, `:path` (split and decoded like an
    /// HTTP/1 target), `:authority` as `host`, the regular fields as they
    /// came, and `:protocol` (RFC 8441) as `protocol`. Nil without a usable
    /// `:method` and `:path`.
    public init?(http2 headers: [HTTP2Header]) {
        guard let method = headers.value(":method"), let target = headers.value(":path"),
              let (path, query) = RequestTarget.split(target) else { return nil }
        var fields = HTTPHeaders()
        for h in headers {
            switch h.name {
            case ":authority": fields.add(name: "host", value: h.value)
            case ":protocol": fields.add(name: "protocol", value: h.value)
            case _ where h.name.hasPrefix(":"): continue
            default: fields.add(name: h.name, value: h.value)
            }
        }
        self.init(method: method, target: target, path: path, query: query, versionMinor: 2, headers: fields)
    }
}
