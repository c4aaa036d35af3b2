// Aligned text tables for people; --json output for scripts.

/// Renders rows as columns padded to their widest cell; numeric-looking columns align right.
func renderTable(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows.map { $0.map(terminalSafe) }
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
            if isControl(ch) {
                let hex = String(ch.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(ch)
            }
        }
    }
    return out + "\""
}

/// C0, DEL and C1 controls: what a terminal may take for a command.
func isControl(_ c: Unicode.Scalar) -> Bool { c.value < 0x20 || (0x7F...0x9F).contains(c.value) }

/// `s` with every control character written as \xNN (\u{NN} for C1): a process's command name
/// and its files' names are anybody's choice, and must not reach a terminal as escape sequences.
func terminalSafe(_ s: String) -> String {
    guard s.unicodeScalars.contains(where: isControl) else { return s }
    var out = ""
    for c in s.unicodeScalars {
        if !isControl(c) {
            out.unicodeScalars.append(c)
        } else {
            let hex = String(c.value, radix: 16)
            out += c.value < 0x80 ? "\\x" + (hex.count < 2 ? "0" : "") + hex : "\\u{" + hex + "}"
        }
    }
    return out
}
