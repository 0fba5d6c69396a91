/// Fixed-point text for figures (no Foundation in the load generator).
func fixed(_ x: Double, _ decimals: Int = 0) -> String {
    guard x.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let n = (abs(x) * scale).rounded()
    let whole = Int(n / scale)
    var s = (x < 0 && n > 0 ? "-" : "") + String(whole)
    if decimals > 0 {
        let frac = Int(n - Double(whole) * scale)
        let f = String(frac)
        s += "." + String(repeating: "0", count: decimals - f.count) + f
    }
    return s
}

/// Right-aligns `s` in `width` columns.
func padded(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}
