// Aligned text tables for people; --json output for scripts.

/// Renders rows as columns padded to their widest cell; numeric-looking columns align right.
func renderTable(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
    let numeric = header.indices.map { c in
        rows.allSatisfy { row in row[c].first.map { $0.isNumber || $0 == "-" } ?? true }
    }
    return all.map { row in
        row.indices.map { c in
            let pad = String(repeating: " ", count: widths[c] - row[c].count)
            return numeric[c] ? pad + row[c] : row[c] + pad
        }.joined(separator: "  ").trimmingTrailingSpaces()
    }.joined(separator: "\n")
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// JSON string escaping, for --json output.
func jsonString(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if ch.value < 0x20 {
                let hex = String(ch.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(ch)
            }
        }
    }
    return out + "\""
}
